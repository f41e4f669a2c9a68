"""Property (Hypothesis): no reservation row the database can hold makes a calendar feed or the
availability endpoint fail, on SQLite and PostgreSQL. Rows are written past the application
(any length down to a microsecond, any status, any purpose and name), as an older version or
a hand-written SQL fix could have left them; every feed and the availability answer 200 and
hold every row of their window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar
from sqlalchemy.exc import IntegrityError

from raas.service.models import Reservation, User
from tests.service.harness import ApiEnv, api_env

US = 1_000_000  # microseconds per second
DAY = 86_400 * US

lengths = st.one_of(st.integers(1, US), st.integers(1, 120 * US), st.integers(1, 3 * DAY))
offsets = st.one_of(st.integers(-29 * DAY, 300 * DAY), st.integers(-60 * US, 60 * US))
texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300
)
rows = st.lists(
    st.tuples(offsets, lengths, st.sampled_from(["confirmed", "cancelled"]), texts),
    min_size=1,
    max_size=6,
)


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[ApiEnv]:
    e, client = api_env(database_url, tmp_path)
    client.raise_server_exceptions = False
    with client:
        yield e
    e.state.db.dispose()


@pytest.mark.slow
def test_no_stored_row_breaks_a_feed_or_the_availability(env: ApiEnv) -> None:
    robot = env.seeded.robots["arm-1"]
    alice = env.seeded.users["alice@lab"][0]

    @given(rows=rows, name=texts.filter(bool))
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def check(rows: list[tuple[int, int, str, str]], name: str) -> None:
        with env.state.db.write() as db:
            db.query(Reservation).delete()
            db.get_one(User, alice).name = name[:200]
        stored = set()
        for offset, length, status, purpose in rows:
            start = env.clock.now + timedelta(microseconds=offset)
            try:
                with env.state.db.write() as db:
                    row = Reservation(
                        robot_id=robot,
                        user_id=alice,
                        starts_at=start,
                        ends_at=start + timedelta(microseconds=length),
                        status=status,
                        purpose=purpose,
                        created_at=env.clock.now,
                        updated_at=env.clock.now,
                    )
                    db.add(row)
                    db.flush()
                    stored.add(f"reservation-{row.id}@raas")
            except IntegrityError:
                pass  # two confirmed rows may not overlap: the database refuses the second
        for email, path in [
            ("bob@lab", f"/robots/{robot}/calendar.ics"),
            ("staff@lab", f"/robots/{robot}/calendar.ics"),
            ("alice@lab", f"/robots/{robot}/calendar.ics"),
            ("alice@lab", f"/users/{alice}/calendar.ics"),
        ]:
            r = env.client.get(path, headers=env.h(email))
            assert r.status_code == 200, (path, r.text)
            events = Calendar.from_ical(r.content).walk("VEVENT")
            assert {str(e["uid"]) for e in events} == stored
            assert all(e.decoded("dtend") > e.decoded("dtstart") for e in events)
        r = env.client.get(
            f"/robots/{robot}/availability",
            params={
                "starts_at": (env.clock.now - timedelta(days=30)).isoformat(),
                "ends_at": (env.clock.now + timedelta(days=304)).isoformat(),
            },
            headers=env.h("bob@lab"),
        )
        assert r.status_code == 200, r.text

    check()
