"""Per-actuator wear: turn the daemon's cumulative totals into totals since the last staff reset,
compare them with the robot's thresholds and raise each maintenance alert once per crossing.

The daemon reports totals since its counter file was created (never decreasing). Each report
adds its increment over the previous report; a total that went *down* means the daemon's
counter file was recreated, and the new total is all increment. `peak_effort` is a maximum,
not a sum: after a reset it counts only peaks the daemon reports as new records (a report whose
peak differs from the previous one).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from raas.service.errors import NotFound, TooManyActuators
from raas.service.models import ActuatorWear, WearThresholds
from raas.service.schemas import (
    ActuatorWearPublic,
    WearPublic,
    WearReport,
    WearThresholdsPublic,
    WearThresholdsUpdate,
)
from raas.service.settings import Settings

ADDITIVE = ("travel_rad", "load_s", "hours_run")
METRICS = ("travel_rad", "load_s", "peak_effort", "hours_run")
UNITS = {"travel_rad": "rad", "load_s": "s", "peak_effort": "x limit", "hours_run": "h"}
#: Distinct actuators the service keeps per robot (a Shadow hand has 20; room for more).
MAX_ACTUATORS_PER_ROBOT = 256


def thresholds(db: Session, robot_id: int, settings: Settings) -> WearThresholdsPublic:
    """The thresholds in force: the robot's own, else the service defaults."""
    row = db.get(WearThresholds, robot_id)
    values: dict[str, float | None] = {}
    for metric in METRICS:
        own = getattr(row, metric) if row is not None else None
        values[metric] = own if own is not None else getattr(settings, f"wear_{metric}")
    return WearThresholdsPublic.model_validate(values)


def _rows(db: Session, robot_id: int) -> list[ActuatorWear]:
    stmt = select(ActuatorWear).where(ActuatorWear.robot_id == robot_id)
    return list(db.scalars(stmt.order_by(ActuatorWear.actuator)))


def _alert_text(row: ActuatorWear, metric: str, limits: WearThresholdsPublic) -> str:
    limit = getattr(limits, metric)
    value = float(getattr(row, metric))
    limit_text = f"{limit:.4g}" if limit is not None else "?"
    return f"{row.actuator}: {metric} {value:.4g} >= {limit_text} {UNITS[metric]} since reset"


def _evaluate(rows: Iterable[ActuatorWear], limits: WearThresholdsPublic) -> list[str]:
    """Update each row's alerted set; return the alerts that are new (a fresh crossing)."""
    raised: list[str] = []
    for row in rows:
        over = {
            m
            for m in METRICS
            if (limit := getattr(limits, m)) is not None and getattr(row, m) >= limit
        }
        before = set(filter(None, row.alerted.split(",")))
        raised += [_alert_text(row, m, limits) for m in METRICS if m in over - before]
        row.alerted = ",".join(m for m in METRICS if m in over)
    return raised


def record(
    db: Session, robot_id: int, report: WearReport, limits: WearThresholdsPublic, now: datetime
) -> list[str]:
    """Add a heartbeat's wear report; returns the maintenance alerts it newly raised."""
    rows = {row.actuator: row for row in _rows(db, robot_id)}
    new_names = [name for name in report.actuators if name not in rows]
    if len(rows) + len(new_names) > MAX_ACTUATORS_PER_ROBOT:
        raise TooManyActuators(
            f"at most {MAX_ACTUATORS_PER_ROBOT} actuators per robot; "
            f"{len(rows)} known, {len(new_names)} new"
        )
    touched: list[ActuatorWear] = []
    for name, totals in report.actuators.items():
        row = rows.get(name)
        if row is None:
            row = ActuatorWear(robot_id=robot_id, actuator=name, alerted="", updated_at=now)
            for metric in METRICS:
                setattr(row, metric, 0.0)
                setattr(row, f"reported_{metric}", 0.0)
            db.add(row)
        for metric in ADDITIVE:
            new, last = float(getattr(totals, metric)), float(getattr(row, f"reported_{metric}"))
            increment = new - last if new >= last else new  # lower: the counter file restarted
            setattr(row, metric, float(getattr(row, metric)) + increment)
            setattr(row, f"reported_{metric}", new)
        if totals.peak_effort != row.reported_peak_effort:
            row.peak_effort = max(row.peak_effort, totals.peak_effort)
            row.reported_peak_effort = totals.peak_effort
        row.updated_at = now
        touched.append(row)
    raised = _evaluate(touched, limits)
    db.flush()
    return raised


def alerts(db: Session, robot_id: int, limits: WearThresholdsPublic) -> list[str]:
    """The maintenance alerts standing now (actuators past a threshold since their reset)."""
    out: list[str] = []
    for row in _rows(db, robot_id):
        for metric in filter(None, row.alerted.split(",")):
            out.append(_alert_text(row, metric, limits))
    return out


def alert_counts(db: Session) -> dict[int, int]:
    """robot id -> number of standing alerts (actuator x metric), for the metrics gauge."""
    rows = db.execute(
        select(ActuatorWear.robot_id, ActuatorWear.alerted).where(ActuatorWear.alerted != "")
    ).all()
    counts: dict[int, int] = {}
    for robot_id, alerted in rows:
        counts[robot_id] = counts.get(robot_id, 0) + len(list(filter(None, alerted.split(","))))
    return counts


def public(db: Session, robot_id: int, settings: Settings) -> WearPublic:
    limits = thresholds(db, robot_id, settings)
    rows = _rows(db, robot_id)
    actuators = {
        row.actuator: ActuatorWearPublic(
            travel_rad=row.travel_rad,
            load_s=row.load_s,
            peak_effort=row.peak_effort,
            hours_run=row.hours_run,
            reset_at=row.reset_at,
            updated_at=row.updated_at,
        )
        for row in rows
    }
    return WearPublic(
        robot_id=robot_id,
        actuators=actuators,
        thresholds=limits,
        alerts=alerts(db, robot_id, limits),
    )


def reset(db: Session, robot_id: int, actuators: list[str] | None, now: datetime) -> list[str]:
    """Zero the since-reset totals (after maintenance); returns the actuators reset."""
    rows = {row.actuator: row for row in _rows(db, robot_id)}
    names = list(rows) if actuators is None else actuators
    unknown = [n for n in names if n not in rows]
    if unknown:
        raise NotFound(f"no wear recorded for actuator(s) {', '.join(unknown)}")
    for name in names:
        row = rows[name]
        for metric in METRICS:
            setattr(row, metric, 0.0)
        row.alerted = ""
        row.reset_at = now
        row.updated_at = now
    db.flush()
    return names


def set_thresholds(
    db: Session, robot_id: int, data: WearThresholdsUpdate, settings: Settings, now: datetime
) -> tuple[WearThresholdsPublic, list[str]]:
    """Store a robot's thresholds and re-judge every actuator against them; returns the
    thresholds in force and the alerts the change newly raised."""
    row = db.get(WearThresholds, robot_id)
    if row is None:
        row = WearThresholds(robot_id=robot_id)
        db.add(row)
    for metric in METRICS:
        setattr(row, metric, getattr(data, metric))
    row.updated_at = now
    db.flush()
    limits = thresholds(db, robot_id, settings)
    raised = _evaluate(_rows(db, robot_id), limits)
    db.flush()
    return limits, raised
