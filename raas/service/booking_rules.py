"""The shape rules of one booking on one robot: time grid, shortest and longest length, and
the buffer kept free between bookings. Each robot may override each service default.

Pure: no database. `rules_for` resolves a robot's rules for a role; `check_shape` raises the
refusal that names what is wrong with a requested [start, end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from raas.service.errors import BookingTooLong, BookingTooShort, OffGranularity
from raas.service.models import Robot
from raas.service.settings import Settings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BookingRules:
    granularity_s: int
    min_s: int
    #: Longest booking for this role (None: no limit).
    max_s: int | None
    buffer_s: int


def _pick(own: int | None, default: int | None) -> int | None:
    return own if own is not None else default


def rules_for(robot: Robot, settings: Settings, *, staff: bool) -> BookingRules:
    granularity = _pick(robot.booking_granularity_s, settings.booking_granularity_s)
    minimum = _pick(robot.min_booking_s, settings.min_booking_s)
    if staff:
        maximum = _pick(robot.staff_max_booking_s, settings.staff_max_booking_s)
    else:
        maximum = _pick(robot.max_booking_s, settings.max_booking_s)
    buffer = _pick(robot.buffer_s, settings.buffer_s)
    assert granularity is not None and minimum is not None and buffer is not None
    return BookingRules(granularity, max(minimum, granularity), maximum, buffer)


def _describe(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def on_grid(t: datetime, granularity_s: int) -> bool:
    return (t - EPOCH) % timedelta(seconds=granularity_s) == timedelta(0)


def check_shape(rules: BookingRules, start: datetime, end: datetime, robot_name: str) -> None:
    """Raise OffGranularity, BookingTooShort or BookingTooLong for a bad [start, end)."""
    grid = _describe(rules.granularity_s)
    for field, t in (("starts_at", start), ("ends_at", end)):
        if not on_grid(t, rules.granularity_s):
            raise OffGranularity(
                f"{field} {t.isoformat()} is not on robot {robot_name}'s {grid} grid "
                "(whole minutes by default: no seconds or fractions)"
            )
    length = end - start
    if length < timedelta(seconds=rules.min_s):
        raise BookingTooShort(
            f"robot {robot_name} takes bookings of at least {_describe(rules.min_s)}"
        )
    if rules.max_s is not None and length > timedelta(seconds=rules.max_s):
        raise BookingTooLong(
            f"robot {robot_name} takes bookings of at most {_describe(rules.max_s)} for your role"
        )
