"""Lease tokens: offline verification with the robot's key, and every way one is refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from raas.leases import (
    LeaseClaims,
    LeaseExpired,
    LeaseMalformed,
    LeaseNotYetValid,
    LeaseRevoked,
    LeaseSignatureInvalid,
    LeaseWrongRobot,
    LeaseWrongScope,
    generate_private_key,
    load_private_key,
    load_public_key,
    public_key_pem,
    save_private_key,
    sign_lease,
    verify_lease,
)
from tests.service.harness import ROLES, Clock, make_client, seed, settings_for

NOW = 2_000_000_000


def _claims(**kw: object) -> LeaseClaims:
    base: dict[str, object] = dict(
        iss="t",
        sub="alice",
        robot="arm-1",
        rid=7,
        scope="control",
        nbf=NOW,
        exp=NOW + 3600,
        jti="j1",
    )
    return LeaseClaims.model_validate(base | kw)


def test_sign_and_verify_offline() -> None:
    key = generate_private_key()
    token = sign_lease(key, _claims())
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = verify_lease(token, key.public_key(), robot="arm-1", now=NOW + 10, scope="control")
    assert claims.rid == 7 and claims.jti == "j1"
    assert verify_lease(token, key.public_key(), robot="arm-1", now=NOW, scope="observe")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"now": NOW - 1}, LeaseNotYetValid),
        ({"now": NOW + 3600}, LeaseExpired),
        ({"robot": "arm-2"}, LeaseWrongRobot),
        ({"revoked": {"j1"}}, LeaseRevoked),
    ],
)
def test_refusals(kwargs: dict[str, object], error: type[Exception]) -> None:
    key = generate_private_key()
    token = sign_lease(key, _claims())
    args: dict[str, object] = {"robot": "arm-1", "now": NOW + 1} | kwargs
    with pytest.raises(error):
        verify_lease(token, key.public_key(), **args)  # type: ignore[arg-type]


def test_observe_lease_cannot_control_and_foreign_keys_fail() -> None:
    key = generate_private_key()
    token = sign_lease(key, _claims(scope="observe"))
    with pytest.raises(LeaseWrongScope):
        verify_lease(token, key.public_key(), robot="arm-1", now=NOW + 1, scope="control")
    with pytest.raises(LeaseSignatureInvalid):
        verify_lease(token, generate_private_key().public_key(), robot="arm-1", now=NOW + 1)
    with pytest.raises(LeaseMalformed):
        verify_lease("not.a.jwt", key.public_key(), robot="arm-1", now=NOW + 1)
    hs = jwt.encode(
        _claims().model_dump(), "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256"
    )
    with pytest.raises(LeaseMalformed):
        verify_lease(hs, key.public_key(), robot="arm-1", now=NOW + 1)
    tampered = token.split(".")
    body = jwt.utils.base64url_encode(_claims(scope="control").model_dump_json().encode()).decode()
    with pytest.raises(LeaseSignatureInvalid):
        verify_lease(
            ".".join([tampered[0], body, tampered[2]]), key.public_key(), robot="arm-1", now=NOW + 1
        )


def test_keys_round_trip_through_pem(tmp_path: Path) -> None:
    key = generate_private_key()
    save_private_key(key, tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    loaded = load_private_key(tmp_path / "k.pem")
    pub = load_public_key((tmp_path / "k.pem.pub").read_text())
    assert public_key_pem(loaded) == public_key_pem(pub) == public_key_pem(key)


def test_cli_keygen_issue_verify(tmp_path: Path) -> None:
    raasd = [sys.executable, "-m", "raas.cli", "lease"]
    key = tmp_path / "lease.pem"
    subprocess.run([*raasd, "keygen", str(key)], check=True, capture_output=True)
    token = subprocess.run(
        [*raasd, "issue", "--key", str(key), "--robot", "arm-1", "--minutes", "5"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ok = subprocess.run(
        [*raasd, "verify", "--pub", f"{key}.pub", "--robot", "arm-1", token],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and '"robot": "arm-1"' in ok.stdout
    bad = subprocess.run(
        [*raasd, "verify", "--pub", f"{key}.pub", "--robot", "arm-2", token],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "LeaseWrongRobot" in bad.stderr


# -- leases issued by the service ---------------------------------------------------------


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[tuple[object, object, Clock]]:
    settings = settings_for(database_url, tmp_path)
    seeded = seed(settings, users=ROLES, robots=("arm-1", "arm-2"))
    clock = Clock()
    client, state = make_client(settings, clock)
    with client:
        yield client, seeded, clock
    state.db.dispose()


def test_service_lease_verifies_with_the_robots_key_only_inside_the_slot(service: tuple) -> None:  # type: ignore[type-arg]
    client, seeded, clock = service
    alice = seeded.headers("alice@lab")
    start, end = clock.now + timedelta(hours=1), clock.now + timedelta(hours=2)
    rid = client.post(
        "/reservations",
        json={
            "robot_id": seeded.robots["arm-1"],
            "starts_at": start.isoformat(),
            "ends_at": end.isoformat(),
        },
        headers=alice,
    ).json()["id"]
    r = client.post(f"/reservations/{rid}/lease", json={"scope": "control"}, headers=alice)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    robot = client.get(f"/robots/{seeded.robots['arm-1']}", headers=alice).json()
    key = load_public_key(robot["lease_public_key"])
    claims = verify_lease(token, key, robot="arm-1", now=start.timestamp() + 1, scope="control")
    assert (claims.rid, claims.sub, claims.nbf, claims.exp) == (
        rid,
        "alice@lab",
        int(start.timestamp()),
        int(end.timestamp()),
    )
    with pytest.raises(LeaseNotYetValid):
        verify_lease(token, key, robot="arm-1", now=start.timestamp() - 1)
    with pytest.raises(LeaseExpired):
        verify_lease(token, key, robot="arm-1", now=end.timestamp())
    with pytest.raises(LeaseWrongRobot):
        verify_lease(token, key, robot="arm-2", now=start.timestamp() + 1)
    # other people: bob cannot lease alice's booking; staff may observe but not control
    assert (
        client.post(
            f"/reservations/{rid}/lease", json={}, headers=seeded.headers("bob@lab")
        ).status_code
        == 404
    )
    staff = seeded.headers("staff@lab")
    assert (
        client.post(
            f"/reservations/{rid}/lease", json={"scope": "control"}, headers=staff
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/reservations/{rid}/lease", json={"scope": "observe"}, headers=staff
        ).status_code
        == 201
    )
    # cancelling revokes: the jti appears in the robot's revocation feed
    client.post(f"/reservations/{rid}/cancel", headers=alice)
    daemon = {"Authorization": f"Bearer {seeded.robot_tokens['arm-1']}"}
    feed = client.get(
        f"/robots/{seeded.robots['arm-1']}/revocations", params={"since": 0}, headers=daemon
    ).json()
    revoked = {e["jti"] for e in feed["revocations"]}
    assert claims.jti in revoked and len(revoked) == 2
    with pytest.raises(LeaseRevoked):
        verify_lease(token, key, robot="arm-1", now=start.timestamp() + 1, revoked=revoked)
    # no new lease for a cancelled reservation; the other robot's daemon cannot read this feed
    assert client.post(f"/reservations/{rid}/lease", json={}, headers=alice).status_code == 409
    other = {"Authorization": f"Bearer {seeded.robot_tokens['arm-2']}"}
    assert (
        client.get(f"/robots/{seeded.robots['arm-1']}/revocations", headers=other).status_code
        == 403
    )
    again = client.get(
        f"/robots/{seeded.robots['arm-1']}/revocations",
        params={"since": feed["cursor"]},
        headers=daemon,
    )
    assert again.json()["revocations"] == []


def test_service_signing_key_persists_across_restarts(tmp_path: Path) -> None:
    settings = settings_for(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path)
    _, first = make_client(settings)
    _, second = make_client(settings)
    assert first.public_key_pem == second.public_key_pem
    first.db.dispose()
    second.db.dispose()


def test_leases_package_does_not_import_the_service() -> None:
    """The robot daemon imports raas.leases; it must not drag the service (FastAPI, SQL) along."""
    code = (
        "import sys, raas.leases, raas.leases.follow, raas.leases.cli; "
        "heavy = ('raas.service', 'fastapi', 'sqlalchemy'); "
        "bad = sorted(m for m in sys.modules if m.startswith(heavy)); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
