"""The shape rules of one booking on one robot: time grid, shortest and longest length, and
the buffer kept free between bookings. Each robot may override each service default.

Pure: no database. `rules_for` resolves a robot's rules for a role; `check_shape` raises the
refusal that names what is wrong with a requested [start, end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from raas.service.errors import BookingTooLong, BookingTooShort, OffGranularity
from raas.service.settings import Settings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BookableRobot(Protocol):
    """What a booking reads of its robot: an ORM `models.Robot`, or a `RobotRow`."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def health_blocked(self) -> bool: ...
    @property
    def health_note(self) -> str: ...
    @property
    def booking_granularity_s(self) -> int | None: ...
    @property
    def min_booking_s(self) -> int | None: ...
    @property
    def max_booking_s(self) -> int | None: ...
    @property
    def staff_max_booking_s(self) -> int | None: ...
    @property
    def buffer_s(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class RobotRow:
    """A robot's booking columns read by raw SQL (the booking paths of
    raas/service/crud/booking_sqlite.py and booking_postgresql.py): a plain object, because
    building an ORM `Robot` (instrumented attributes, instance state) cost about 0.1 ms per
    booking inside the robot's lock (docs/performance.md, "The create-booking path")."""

    id: int
    name: str
    status: str
    health_blocked: bool
    health_note: str
    booking_granularity_s: int | None
    min_booking_s: int | None
    max_booking_s: int | None
    staff_max_booking_s: int | None
    buffer_s: int | None


@dataclass(frozen=True)
class BookingRules:
    granularity_s: int
    min_s: int
    #: Longest booking for this role (None: no limit).
    max_s: int | None
    buffer_s: int


def _pick(own: int | None, default: int | None) -> int | None:
    return own if own is not None else default


def rules_for(robot: BookableRobot, settings: Settings, *, staff: bool) -> BookingRules:
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
