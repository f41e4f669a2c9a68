"""Wear accounting per actuator: how far each one travelled, how long it worked under load, the
largest effort it saw and how many hours the hand ran.

`WearMeter.update()` runs once per loop cycle with the measured actuator positions and efforts;
it only does in-place numpy work on preallocated arrays (no allocation, O(actuators)):

    travel_rad   += |position - previous position|   (the first sample and NaN/inf are skipped)
    load_s       += period   while |effort| / force limit >= load_fraction
    peak_effort   = max |effort| / force limit       (non-finite efforts are skipped)
    hours_run    += period / 3600   while the controller is running

`totals()` gives the counters in the shape of the service heartbeat's `wear` field
(docs/service.md); `save()`/`load()` keep them across daemon restarts in a small JSON file
(var/wear/<robot>.json), written atomically (temp file + os.replace) outside the loop. The
counters are cumulative since that file was created and never decrease; staff reset a baseline
in the service after maintenance, not here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from raas.safety.errors import SafetyConfigError, WearFileCorruptError

FILE_VERSION = 1
FIELDS = ("travel_rad", "load_s", "peak_effort", "hours_run")


class WearMeter:
    """Cumulative wear counters of one hand's actuators."""

    def __init__(
        self,
        actuator_names: Sequence[str],
        effort_limits: np.ndarray | Sequence[float],
        period_s: float,
        load_fraction: float = 0.5,
    ) -> None:
        names = tuple(actuator_names)
        limits = np.asarray(effort_limits, dtype=np.float64).reshape(-1)
        if len(names) == 0 or len(set(names)) != len(names):
            raise SafetyConfigError(f"wear: actuator names must be unique and non-empty: {names}")
        if limits.shape != (len(names),):
            raise SafetyConfigError(
                f"wear: {len(names)} actuators but {limits.shape[0]} effort limits"
            )
        if not np.all(np.isfinite(limits)) or np.any(limits <= 0):
            raise SafetyConfigError(f"wear: effort limits must be finite and > 0: {limits}")
        if not (math.isfinite(period_s) and period_s > 0):
            raise SafetyConfigError(f"wear: period_s must be > 0, got {period_s}")
        if not (math.isfinite(load_fraction) and load_fraction > 0):
            raise SafetyConfigError(f"wear: load_fraction must be > 0, got {load_fraction}")
        n = len(names)
        self.names = names
        self.limits = limits.copy()
        self.period_s = float(period_s)
        self.load_fraction = float(load_fraction)
        self.travel_rad = np.zeros(n)
        self.load_s = np.zeros(n)
        self.peak_effort = np.zeros(n)
        self.hours_run = np.zeros(n)
        # Scratch for update(): nothing is allocated per cycle.
        self._prev = np.full(n, np.nan)
        self._delta = np.zeros(n)
        self._ratio = np.zeros(n)
        self._finite = np.zeros(n, dtype=bool)
        self._loaded = np.zeros(n, dtype=bool)
        self._hours_step = self.period_s / 3600.0
        # Actuators found in the file but not on this hand: written back unchanged by save().
        self._foreign: dict[str, dict[str, float]] = {}

    # -- the loop's side -------------------------------------------------------------------

    def update(self, measured_act_pos: np.ndarray, efforts: np.ndarray, running: bool) -> None:
        """Account one cycle. `measured_act_pos`, `efforts`: one value per actuator."""
        d, m = self._delta, self._finite
        np.subtract(measured_act_pos, self._prev, out=d)
        np.abs(d, out=d)
        np.isfinite(d, out=m)  # false on the first sample (prev is NaN) and for NaN/inf
        np.add(self.travel_rad, d, out=self.travel_rad, where=m)
        np.isfinite(measured_act_pos, out=m)
        np.copyto(self._prev, measured_act_pos, where=m)  # a NaN sample keeps the last position

        r, loaded = self._ratio, self._loaded
        np.abs(efforts, out=r)
        np.divide(r, self.limits, out=r)
        np.isfinite(r, out=m)
        np.fmax(self.peak_effort, r, out=self.peak_effort, where=m)
        np.greater_equal(r, self.load_fraction, out=loaded)
        np.logical_and(loaded, m, out=loaded)
        np.add(self.load_s, self.period_s, out=self.load_s, where=loaded)
        if running:
            np.add(self.hours_run, self._hours_step, out=self.hours_run)

    # -- outside the loop ------------------------------------------------------------------

    def totals(self) -> dict[str, Any]:
        """{"actuators": {name: {"travel_rad", "load_s", "peak_effort", "hours_run"}}}."""
        out: dict[str, dict[str, float]] = {k: dict(v) for k, v in self._foreign.items()}
        for i, name in enumerate(self.names):
            out[name] = {
                "travel_rad": float(self.travel_rad[i]),
                "load_s": float(self.load_s[i]),
                "peak_effort": float(self.peak_effort[i]),
                "hours_run": float(self.hours_run[i]),
            }
        return {"actuators": out}

    def save(self, path: Path) -> None:
        """Write the counters atomically: a crash leaves the old file or the new one, whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "version": FILE_VERSION,
            "saved_at": datetime.now(UTC).isoformat(),
            **self.totals(),
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)  # os.replace: atomic on POSIX
        finally:
            tmp.unlink(missing_ok=True)

    def load(self, path: Path) -> bool:
        """Continue from the counters in `path`; False when there is no file yet (from zero).

        A file that cannot be read (bad JSON, unknown version, negative or non-finite numbers)
        is renamed to `<path>.corrupt`, the counters restart from zero, and
        WearFileCorruptError says so: catch it, log it, keep running.
        """
        self._reset()
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except (OSError, UnicodeDecodeError) as exc:
            self._set_aside(path, f"{type(exc).__name__}: {exc}")
        try:
            entries = _parse(raw)
        except ValueError as exc:
            self._set_aside(path, str(exc))
        index = {name: i for i, name in enumerate(self.names)}
        for name, counters in entries.items():
            i = index.get(name)
            if i is None:
                self._foreign[name] = counters
                continue
            self.travel_rad[i] = counters["travel_rad"]
            self.load_s[i] = counters["load_s"]
            self.peak_effort[i] = counters["peak_effort"]
            self.hours_run[i] = counters["hours_run"]
        return True

    def _reset(self) -> None:
        for a in (self.travel_rad, self.load_s, self.peak_effort, self.hours_run):
            a[:] = 0.0
        self._prev[:] = np.nan
        self._foreign = {}

    def _set_aside(self, path: Path, why: str) -> NoReturn:
        self._reset()
        kept = path.with_name(path.name + ".corrupt")
        n = 1
        while kept.exists():  # never overwrite an earlier bad file
            kept = path.with_name(f"{path.name}.corrupt.{n}")
            n += 1
        path.replace(kept)
        raise WearFileCorruptError(str(path), str(kept), why)


def _parse(raw: str) -> dict[str, dict[str, float]]:
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("version") != FILE_VERSION:
        raise ValueError(f"version {doc.get('version')!r}, expected {FILE_VERSION}")
    actuators = doc.get("actuators")
    if not isinstance(actuators, dict):
        raise ValueError("no 'actuators' object")
    out: dict[str, dict[str, float]] = {}
    for name, counters in actuators.items():
        if not isinstance(counters, dict):
            raise ValueError(f"actuator {name!r}: not an object")
        values: dict[str, float] = {}
        for field in FIELDS:
            v = counters.get(field)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"actuator {name!r}: {field} is {v!r}, not a number")
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"actuator {name!r}: {field} = {v!r}")
            values[field] = float(v)
        out[str(name)] = values
    return out
