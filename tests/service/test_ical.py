"""The iCalendar rendering: stable UIDs, growing SEQUENCE, cancelled events, DST-proof UTC times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from raas.service.ical import (
    MaintenanceEntry,
    ReservationEntry,
    render_robot_calendar,
    render_user_calendar,
)

BERLIN = ZoneInfo("Europe/Berlin")
CREATED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def booking(ident: int, start: datetime, end: datetime, **changes: object) -> ReservationEntry:
    entry = ReservationEntry(
        id=ident,
        robot_id=1,
        robot_name="shadow-1",
        user_id=7,
        user_name="alice",
        start=start,
        end=end,
        created_at=CREATED,
        updated_at=CREATED,
    )
    return replace(entry, **changes)  # type: ignore[arg-type]


def events(feed: bytes) -> dict[str, dict[str, object]]:
    cal = Calendar.from_ical(feed)
    return {
        str(ev["uid"]): {
            "start": ev.decoded("dtstart"),
            "end": ev.decoded("dtend"),
            "status": str(ev["status"]),
            "sequence": int(ev["sequence"]),
            "modified": ev.decoded("last-modified"),
            "summary": str(ev["summary"]),
        }
        for ev in cal.walk("VEVENT")
    }


def test_bookings_across_the_spring_forward_keep_their_instants() -> None:
    # 2026-03-29 02:00 CET jumps to 03:00 CEST in Berlin.
    before = booking(
        1, datetime(2026, 3, 28, 10, tzinfo=BERLIN), datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    )
    across = booking(
        2, datetime(2026, 3, 29, 1, tzinfo=BERLIN), datetime(2026, 3, 29, 4, tzinfo=BERLIN)
    )
    after = booking(
        3, datetime(2026, 3, 30, 10, tzinfo=BERLIN), datetime(2026, 3, 30, 12, tzinfo=BERLIN)
    )
    feed = render_robot_calendar("shadow-1", [after, across, before], [], timezone="Europe/Berlin")
    got = events(feed)
    assert got["reservation-1@raas"]["start"] == datetime(2026, 3, 28, 9, tzinfo=UTC)
    assert got["reservation-2@raas"]["start"] == datetime(2026, 3, 29, 0, tzinfo=UTC)
    assert got["reservation-2@raas"]["end"] == datetime(2026, 3, 29, 2, tzinfo=UTC)  # 2 h, not 3
    assert got["reservation-3@raas"]["start"] == datetime(2026, 3, 30, 8, tzinfo=UTC)
    assert b"DTSTART:20260329T000000Z" in feed
    assert b"X-WR-TIMEZONE:Europe/Berlin" in feed
    assert list(got) == ["reservation-1@raas", "reservation-2@raas", "reservation-3@raas"]


def test_an_update_keeps_the_uid_and_raises_sequence_and_last_modified() -> None:
    start = datetime(2026, 3, 29, 8, tzinfo=UTC)
    first = booking(5, start, start + timedelta(hours=1))
    moved = replace(
        first,
        start=start + timedelta(hours=2),
        end=start + timedelta(hours=3),
        updated_at=CREATED + timedelta(hours=1),
    )
    old = events(render_robot_calendar("shadow-1", [first], []))["reservation-5@raas"]
    new = events(render_robot_calendar("shadow-1", [moved], []))["reservation-5@raas"]
    assert int(str(new["sequence"])) > int(str(old["sequence"]))
    assert new["modified"] == CREATED + timedelta(hours=1)
    assert new["start"] == start + timedelta(hours=2)
    stored = replace(moved, revision=3)
    assert events(render_robot_calendar("r", [stored], []))["reservation-5@raas"]["sequence"] == 3


def test_cancelled_events_stay_in_the_feed_marked_cancelled() -> None:
    start = datetime(2026, 3, 29, 8, tzinfo=UTC)
    live = booking(1, start, start + timedelta(hours=1))
    gone = booking(2, start, start + timedelta(hours=1), cancelled=True, updated_at=start)
    block = MaintenanceEntry(
        id=9,
        robot_id=1,
        robot_name="shadow-1",
        start=start + timedelta(hours=2),
        end=start + timedelta(hours=4),
        created_at=CREATED,
        updated_at=CREATED,
        reason="tendon re-tensioning",
    )
    got = events(render_robot_calendar("shadow-1", [live, gone], [block]))
    assert got["reservation-1@raas"]["status"] == "CONFIRMED"
    assert got["reservation-2@raas"]["status"] == "CANCELLED"
    assert got["maintenance-9@raas"]["status"] == "CONFIRMED"
    assert "maintenance" in str(got["maintenance-9@raas"]["summary"])


def test_user_feed_titles_events_by_robot() -> None:
    start = datetime(2026, 4, 1, 8, tzinfo=UTC)
    got = events(render_user_calendar("alice", [booking(1, start, start + timedelta(hours=1))]))
    assert str(got["reservation-1@raas"]["summary"]).startswith("shadow-1")


def test_lines_are_crlf_and_folded() -> None:
    start = datetime(2026, 4, 1, 8, tzinfo=UTC)
    long_note = "a note " * 40
    feed = render_robot_calendar("r", [booking(1, start, start + timedelta(1), note=long_note)], [])
    lines = feed.split(b"\r\n")
    assert lines[0] == b"BEGIN:VCALENDAR"
    assert all(len(line) <= 75 for line in lines)


def test_naive_times_are_refused_and_backwards_rows_still_render() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_robot_calendar("r", [booking(1, datetime(2026, 4, 1), datetime(2026, 4, 2))], [])
    # A row that ends before it starts (impossible under the schema) still renders, as one
    # second: no stored row may break a whole feed.
    start = datetime(2026, 4, 1, tzinfo=UTC)
    ev = events(render_robot_calendar("r", [booking(1, start, start)], []))["reservation-1@raas"]
    assert ev["start"] == start and ev["end"] == start + timedelta(seconds=1)
