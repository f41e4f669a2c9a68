"""iCalendar (RFC 5545) feeds of reservations and maintenance blocks: pure rendering, no I/O.

The routes hand in plain rows (`ReservationEntry`, `MaintenanceEntry`) with aware datetimes and get
the feed's bytes back. Rules a calendar app relies on when it re-reads a subscribed feed:

- UID is stable per booking (`reservation-<id>@<domain>`, `maintenance-<id>@<domain>`): moving or
  cancelling a booking updates the same event instead of adding a new one.
- SEQUENCE grows with every revision and LAST-MODIFIED / DTSTAMP are the revision time, so a
  client can tell the newer copy of an event. When the database keeps no revision counter the
  sequence is derived from the revision time (whole seconds since creation), which grows too.
- A cancelled booking stays in the feed as STATUS:CANCELLED (with a bumped SEQUENCE), so clients
  that already show it remove or strike it through instead of keeping a ghost.
- Every time is written in UTC (`...Z`): an instant is unambiguous across daylight-saving changes,
  and the app shows it in the viewer's zone. X-WR-TIMEZONE names the robot's zone as a hint.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event

PRODID = "-//raas//reservation service//EN"
DEFAULT_DOMAIN = "raas"
REFRESH = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ReservationEntry:
    """One reservation as the feed sees it (times must be timezone-aware)."""

    id: int | str
    robot_id: int | str
    robot_name: str
    user_id: int | str
    user_name: str
    start: datetime
    end: datetime
    created_at: datetime
    updated_at: datetime
    cancelled: bool = False
    note: str | None = None
    revision: int | None = None
    #: The reader may not see who booked or why (someone else's booking, a non-staff reader):
    #: the event is a busy block titled "booked", with no name and no purpose.
    private: bool = False


@dataclass(frozen=True, slots=True)
class MaintenanceEntry:
    """One maintenance block (staff only create these; nobody can book over one)."""

    id: int | str
    robot_id: int | str
    robot_name: str
    start: datetime
    end: datetime
    created_at: datetime
    updated_at: datetime
    reason: str = ""
    cancelled: bool = False
    revision: int | None = None


def as_utc(value: datetime, what: str) -> datetime:
    """`value` converted to UTC; naive datetimes are refused (they would shift across DST)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC).replace(microsecond=0)


def one_line(text: str) -> str:
    """Text for a one-line property (names, titles): control characters (a newline in a
    user's name) would break the content line, and with it the whole feed."""
    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)


def _multi_line(text: str) -> str:
    """Text for DESCRIPTION: newlines kept (escaped by icalendar), other controls dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in text if c == "\n" or unicodedata.category(c) != "Cc")


def _ceil_second(value: datetime) -> datetime:
    whole = as_utc(value, "end")
    return whole + timedelta(seconds=1) if value.microsecond else whole


def sequence_of(created_at: datetime, updated_at: datetime, revision: int | None) -> int:
    """The SEQUENCE: the stored revision counter, else whole seconds from creation to revision."""
    if revision is not None:
        return max(revision, 0)
    seconds = (as_utc(updated_at, "updated_at") - as_utc(created_at, "created_at")).total_seconds()
    return max(int(seconds), 0)


def reservation_uid(reservation_id: int | str, domain: str = DEFAULT_DOMAIN) -> str:
    return f"reservation-{reservation_id}@{domain}"


def maintenance_uid(block_id: int | str, domain: str = DEFAULT_DOMAIN) -> str:
    return f"maintenance-{block_id}@{domain}"


def _event(
    *,
    uid: str,
    summary: str,
    description: str,
    start: datetime,
    end: datetime,
    created_at: datetime,
    updated_at: datetime,
    cancelled: bool,
    revision: int | None,
    categories: str,
    location: str,
) -> Event:
    # iCalendar has whole seconds: round outwards, so a sub-second row (stored by an older
    # version) still renders as a one-second event. No stored row may break a feed: a row whose
    # end is not after its start (impossible under the schema's check) becomes one second too.
    start_utc = as_utc(start, "start")
    end_utc = _ceil_second(end)
    if end_utc <= start_utc:
        end_utc = start_utc + timedelta(seconds=1)
    modified = as_utc(updated_at, "updated_at")
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", modified)
    event.add("created", as_utc(created_at, "created_at"))
    event.add("last-modified", modified)
    event.add("sequence", sequence_of(created_at, updated_at, revision))
    event.add("dtstart", start_utc)
    event.add("dtend", end_utc)
    event.add("summary", one_line(summary))
    if description:
        event.add("description", _multi_line(description))
    event.add("location", one_line(location))
    event.add("categories", [categories])
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "TRANSPARENT" if cancelled else "OPAQUE")
    return event


def reservation_event(
    entry: ReservationEntry, *, for_robot: bool, domain: str = DEFAULT_DOMAIN
) -> Event:
    """A reservation as a VEVENT: titled by who booked (robot feed) or which robot (user feed)."""
    cancelled = " (cancelled)" if entry.cancelled else ""
    if entry.private:
        summary = f"{entry.robot_name}: booked{cancelled}"
        lines = [f"Robot: {entry.robot_name}"]
    else:
        who_or_what = entry.user_name if for_robot else entry.robot_name
        summary = f"{who_or_what}: reservation{cancelled}"
        lines = [f"Robot: {entry.robot_name}", f"Booked by: {entry.user_name}"]
        if entry.note:
            lines.append(entry.note)
    return _event(
        uid=reservation_uid(entry.id, domain),
        summary=summary,
        description="\n".join(lines),
        start=entry.start,
        end=entry.end,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        cancelled=entry.cancelled,
        revision=entry.revision,
        categories="RESERVATION",
        location=entry.robot_name,
    )


def maintenance_event(entry: MaintenanceEntry, *, domain: str = DEFAULT_DOMAIN) -> Event:
    """A maintenance block as a VEVENT."""
    summary = f"{entry.robot_name}: maintenance" + (" (cancelled)" if entry.cancelled else "")
    return _event(
        uid=maintenance_uid(entry.id, domain),
        summary=summary,
        description=entry.reason,
        start=entry.start,
        end=entry.end,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        cancelled=entry.cancelled,
        revision=entry.revision,
        categories="MAINTENANCE",
        location=entry.robot_name,
    )


def render_calendar(
    name: str,
    reservations: Iterable[ReservationEntry],
    maintenance: Iterable[MaintenanceEntry] = (),
    *,
    for_robot: bool,
    timezone: str | None = None,
    domain: str = DEFAULT_DOMAIN,
) -> bytes:
    """The whole feed as bytes (CRLF-separated, folded lines), events ordered by start time."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", one_line(name))
    if timezone:
        cal.add("x-wr-timezone", timezone)
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT15M")
    events = [reservation_event(r, for_robot=for_robot, domain=domain) for r in reservations]
    events += [maintenance_event(m, domain=domain) for m in maintenance]
    events.sort(key=lambda e: (e.decoded("dtstart"), str(e["uid"])))
    for event in events:
        cal.add_component(event)
    data: bytes = cal.to_ical()
    return data


def render_robot_calendar(
    robot_name: str,
    reservations: Iterable[ReservationEntry],
    maintenance: Iterable[MaintenanceEntry],
    *,
    timezone: str | None = None,
    domain: str = DEFAULT_DOMAIN,
) -> bytes:
    """A robot's feed: every reservation (titled by who booked, or "booked" for a private
    entry) and every maintenance block."""
    return render_calendar(
        f"raas: {robot_name}",
        reservations,
        maintenance,
        for_robot=True,
        timezone=timezone,
        domain=domain,
    )


def render_user_calendar(
    user_name: str,
    reservations: Iterable[ReservationEntry],
    maintenance: Iterable[MaintenanceEntry] = (),
    *,
    timezone: str | None = None,
    domain: str = DEFAULT_DOMAIN,
) -> bytes:
    """A user's feed: their reservations (titled by robot), plus any maintenance blocks given."""
    return render_calendar(
        f"raas: {user_name}",
        reservations,
        maintenance,
        for_robot=False,
        timezone=timezone,
        domain=domain,
    )
