"""Wear accounting in the service: a daemon's cumulative per-actuator totals become totals since
the last staff reset; crossing a staff threshold raises exactly one maintenance alert (robot,
audit log, metrics gauge), which a staff reset clears. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from raas.service.settings import Settings
from tests.service.harness import ROLES, Clock, Seeded, make_client, seed, settings_for


class Env:
    def __init__(self, client: TestClient, seeded: Seeded) -> None:
        self.client = client
        self.seeded = seeded
        self.robot = seeded.robots["arm-1"]

    def h(self, email: str) -> dict[str, str]:
        return self.seeded.headers(email)

    def beat(self, **actuators: dict[str, float]) -> Any:
        r = self.client.post(
            f"/robots/{self.robot}/heartbeat",
            json={"status": "available", "wear": {"actuators": actuators}},
            headers={"Authorization": f"Bearer {self.seeded.robot_tokens['arm-1']}"},
        )
        assert r.status_code == 200, r.text
        return r.json()

    def wear(self) -> Any:
        r = self.client.get(f"/robots/{self.robot}/wear", headers=self.h("alice@lab"))
        assert r.status_code == 200, r.text
        return r.json()

    def alert_audits(self) -> list[dict[str, Any]]:
        entries = self.client.get("/audit", headers=self.h("staff@lab")).json()
        return [e for e in entries if e["action"] == "robot.wear_alert"]

    def gauge(self) -> float:
        text = self.client.get("/metrics", headers=self.h("staff@lab")).text
        line = next(
            x for x in text.splitlines() if x.startswith('raas_robot_wear_alerts{robot="arm-1"}')
        )
        return float(line.split()[-1])


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users=ROLES, robots=("arm-1",), unlimited=True)
    client, state = make_client(settings, Clock())
    with client:
        yield Env(client, seeded)
    state.db.dispose()


def totals(
    travel: float, load: float = 0.0, peak: float = 0.0, hours: float = 0.0
) -> dict[str, float]:
    return {"travel_rad": travel, "load_s": load, "peak_effort": peak, "hours_run": hours}


def test_a_threshold_crossing_raises_one_alert_until_staff_reset(env: Env) -> None:
    r = env.client.put(
        f"/robots/{env.robot}/wear/thresholds",
        json={"travel_rad": 10.0, "peak_effort": 1.0},
        headers=env.h("staff@lab"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["thresholds"]["travel_rad"] == 10.0
    assert r.json()["thresholds"]["hours_run"] == Settings().wear_hours_run  # the default

    robot = env.beat(A_FFJ1=totals(4.0), A_FFJ2=totals(1.0))
    assert robot["wear_alerts"] == [] and env.gauge() == 0
    env.beat(A_FFJ1=totals(8.0), A_FFJ2=totals(2.0))
    robot = env.beat(A_FFJ1=totals(12.5), A_FFJ2=totals(3.0))  # crosses 10
    assert len(robot["wear_alerts"]) == 1 and robot["wear_alerts"][0].startswith(
        "A_FFJ1: travel_rad"
    )
    for travel in (16.0, 20.0, 30.0):  # still past it: the alert stands, not raised again
        robot = env.beat(A_FFJ1=totals(travel), A_FFJ2=totals(3.0))
    assert len(robot["wear_alerts"]) == 1
    assert len(env.alert_audits()) == 1 and "A_FFJ1: travel_rad" in env.alert_audits()[0]["detail"]
    assert env.gauge() == 1
    assert robot["bookable"] is True  # an alert alone does not block booking
    wear = env.wear()
    assert wear["actuators"]["A_FFJ1"]["travel_rad"] == pytest.approx(30.0)
    assert wear["actuators"]["A_FFJ2"]["travel_rad"] == pytest.approx(3.0)
    assert wear["alerts"] == robot["wear_alerts"]

    # only staff reset; afterwards the alert is gone and the count restarts from zero
    reset_url = f"/robots/{env.robot}/wear/reset"
    assert env.client.post(reset_url, json={}, headers=env.h("alice@lab")).status_code == 403
    r = env.client.post(reset_url, json={"actuators": ["NOPE"]}, headers=env.h("staff@lab"))
    assert r.status_code == 404
    r = env.client.post(
        reset_url,
        json={"actuators": ["A_FFJ1"], "note": "tendon replaced"},
        headers=env.h("staff@lab"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["alerts"] == [] and r.json()["actuators"]["A_FFJ1"]["travel_rad"] == 0.0
    assert r.json()["actuators"]["A_FFJ2"]["travel_rad"] == pytest.approx(3.0)  # not reset
    robot = env.beat(A_FFJ1=totals(32.0), A_FFJ2=totals(3.0))
    assert robot["wear_alerts"] == [] and env.gauge() == 0
    assert env.wear()["actuators"]["A_FFJ1"]["travel_rad"] == pytest.approx(2.0)

    # a fresh crossing after the reset is a new alert
    robot = env.beat(A_FFJ1=totals(43.0), A_FFJ2=totals(3.0))
    assert len(robot["wear_alerts"]) == 1 and len(env.alert_audits()) == 2

    # the daemon's counter file was recreated (totals fell): the new totals are all increment
    env.client.post(reset_url, json={"actuators": "all"}, headers=env.h("staff@lab"))
    env.beat(A_FFJ1=totals(50.0))
    env.beat(A_FFJ1=totals(3.0))
    assert env.wear()["actuators"]["A_FFJ1"]["travel_rad"] == pytest.approx(7.0 + 3.0)


def test_peak_effort_and_threshold_changes(env: Env) -> None:
    url = f"/robots/{env.robot}/wear/thresholds"
    env.beat(A_THJ1=totals(0.0, peak=0.5))
    r = env.client.put(url, json={"peak_effort": 1.0}, headers=env.h("staff@lab"))
    assert r.json()["alerts"] == []
    robot = env.beat(A_THJ1=totals(0.0, peak=1.05))
    assert len(robot["wear_alerts"]) == 1 and "A_THJ1: peak_effort" in robot["wear_alerts"][0]
    # staff raise the threshold: the alert no longer stands; lowering it again re-raises it
    r = env.client.put(url, json={"peak_effort": 1.1}, headers=env.h("staff@lab"))
    assert r.json()["alerts"] == []
    r = env.client.put(url, json={"peak_effort": 1.0}, headers=env.h("staff@lab"))
    assert len(r.json()["alerts"]) == 1 and len(env.alert_audits()) == 2
    # after a reset, a peak counts only when the daemon reports a new record
    env.client.post(f"/robots/{env.robot}/wear/reset", json={}, headers=env.h("staff@lab"))
    assert env.beat(A_THJ1=totals(0.0, peak=1.05))["wear_alerts"] == []
    assert env.wear()["actuators"]["A_THJ1"]["peak_effort"] == 0.0
    assert len(env.beat(A_THJ1=totals(0.0, peak=1.12))["wear_alerts"]) == 1
    # null: back to the service default
    r = env.client.put(url, json={"peak_effort": None}, headers=env.h("staff@lab"))
    assert r.json()["thresholds"]["peak_effort"] == Settings().wear_peak_effort
    # who may change thresholds
    assert env.client.put(url, json={}, headers=env.h("alice@lab")).status_code == 403
    audit = [
        e
        for e in env.client.get("/audit", headers=env.h("staff@lab")).json()
        if e["action"] in ("robot.wear_thresholds", "robot.wear_reset")
    ]
    assert len(audit) == 5


def test_bad_wear_reports_are_refused_and_change_nothing(env: Env) -> None:
    env.beat(A_FFJ1=totals(1.0))
    daemon = {
        "Authorization": f"Bearer {env.seeded.robot_tokens['arm-1']}",
        "Content-Type": "application/json",
    }
    url = f"/robots/{env.robot}/heartbeat"
    bad_bodies = [
        '{"wear": {"actuators": {"A_FFJ1": {"travel_rad": NaN}}}}',
        '{"wear": {"actuators": {"A_FFJ1": {"travel_rad": Infinity}}}}',
        '{"wear": {"actuators": {"A_FFJ1": {"travel_rad": -1}}}}',
        '{"wear": {"actuators": {"bad name!": {"travel_rad": 1}}}}',
        '{"wear": {"actuators": [1, 2]}}',
        json.dumps({"wear": {"actuators": {f"A{i}": totals(1.0) for i in range(65)}}}),
        '{"safety": {"state": "exploded"}}',
        '{"health": {"ok": "maybe"}}',
    ]
    for body in bad_bodies:
        r = env.client.post(url, content=body, headers=daemon)
        assert r.status_code == 422, (body, r.text)
    assert env.wear()["actuators"]["A_FFJ1"]["travel_rad"] == pytest.approx(1.0)
    assert env.client.get("/robots/999/wear", headers=env.h("alice@lab")).status_code == 404
    r = env.client.put(
        f"/robots/{env.robot}/wear/thresholds", json={"travel_rad": -5}, headers=env.h("staff@lab")
    )
    assert r.status_code == 422
