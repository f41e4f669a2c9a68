"""Signing-key rotation (issue 15, item 8), on SQLite and PostgreSQL: leases name their key
(`kid`); after a rotation the robot's trusted key set (GET /robots/{id}/lease-key) holds the new
key and the retired one while a lease it signed is live; a daemon reading its keys from a file
picks up a new set without a restart."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from raas_client.wire import ErrorCode

from raas.leases import (
    KeyRing,
    LeaseSignatureInvalid,
    TrustedKeysFile,
    generate_private_key,
    key_id,
    save_private_key,
    verify_lease,
)
from raas.transport.errors import RequestRefusedError
from raas.transport.leases import LeaseGate
from tests.service.harness import ApiEnv, Clock, api_env, make_client

H = timedelta(hours=1)


def _lease(env: ApiEnv, start: timedelta, end: timedelta) -> tuple[int, dict[str, str]]:
    r = env.book("alice@lab", start, end)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    lease = env.client.post(f"/reservations/{rid}/lease", json={}, headers=env.h("alice@lab"))
    assert lease.status_code == 201, lease.text
    return rid, lease.json()


def _trusted(env: ApiEnv) -> KeyRing:
    robot = env.seeded.robots["arm-1"]
    daemon = {"Authorization": f"Bearer {env.seeded.robot_tokens['arm-1']}"}
    r = env.client.get(f"/robots/{robot}/lease-key", headers=daemon)
    assert r.status_code == 200, r.text
    return KeyRing.from_pem(r.text)


def test_rotation_keeps_old_leases_valid_until_they_end(database_url: str, tmp_path: Path) -> None:
    clock = Clock()
    env, client = api_env(database_url, tmp_path, clock=clock)
    old_key_path = env.seeded.settings.signing_key_path
    with client:
        _, old = _lease(env, H, 2 * H)
        old_kid = jwt.get_unverified_header(old["token"])["kid"]
        assert _trusted(env).ids == [old_kid]
    env.state.db.dispose()

    # rotate: a new signing key, the old one retired
    new_key = generate_private_key()
    new_path = tmp_path / "new-signing-key.pem"
    save_private_key(new_key, new_path)
    env2, client2 = api_env_reuse(env, new_path, (old_key_path,), clock)
    with client2:
        _, new = _lease(env2, 5 * H, 6 * H)
        assert jwt.get_unverified_header(new["token"])["kid"] == key_id(new_key) != old_kid
        ring = _trusted(env2)
        assert set(ring.ids) == {key_id(new_key), old_kid}
        at = (clock.now + 1.5 * H).timestamp()
        assert verify_lease(old["token"], ring, robot="arm-1", now=at).jti == old["jti"]
        at = (clock.now + 5.5 * H).timestamp()
        assert verify_lease(new["token"], ring, robot="arm-1", now=at).jti == new["jti"]
        # once the old key's last lease has ended, the robot stops trusting it
        clock.advance(2 * H + timedelta(minutes=1))
        assert _trusted(env2).ids == [key_id(new_key)]
        with pytest.raises(LeaseSignatureInvalid, match="does not trust"):
            verify_lease(old["token"], _trusted(env2), robot="arm-1", now=at)
    env2.state.db.dispose()


def api_env_reuse(
    env: ApiEnv, key: Path, retired: tuple[Path, ...], clock: Clock
) -> tuple[ApiEnv, TestClient]:
    """The same database and users, the service restarted with another signing key."""
    settings = env.seeded.settings.model_copy(
        update={"signing_key_path": key, "retired_signing_keys": retired}
    )
    client, state = make_client(settings, clock)
    return ApiEnv(client, env.seeded, clock, state), client


def test_a_daemon_reloads_its_trusted_keys_without_a_restart(tmp_path: Path) -> None:
    from raas.leases import LeaseClaims, public_key_pem, sign_lease

    old, new = generate_private_key(), generate_private_key()
    path = tmp_path / "lease-keys.pem"
    path.write_text(public_key_pem(old))
    gate = LeaseGate.from_file("arm-1", path)
    assert isinstance(gate.public_key, TrustedKeysFile)
    gate.public_key.check_every_s = 0.0
    claims = LeaseClaims(
        iss="t", sub="a@lab", robot="arm-1", rid=1, scope="control", nbf=0, exp=2**31, jti="j1"
    )
    old_token, new_token = sign_lease(old, claims), sign_lease(new, claims)
    assert gate.verify(old_token, "control").jti == "j1"
    with pytest.raises(RequestRefusedError) as refused:
        gate.verify(new_token, "control")
    assert refused.value.code == ErrorCode.LEASE_SIGNATURE_INVALID
    # the operator (or `raasd up`) writes the service's new key set: no restart
    path.write_text(public_key_pem(new) + public_key_pem(old))
    os.utime(path, ns=(1, 10**18))  # a new mtime even within the file system's resolution
    assert gate.verify(new_token, "control").jti == "j1"
    assert gate.verify(old_token, "control").jti == "j1"
    # a half-written file keeps the last good set
    path.write_text("-----BEGIN PUBLIC KEY-----\ngarbage")
    os.utime(path, ns=(1, 2 * 10**18))
    assert gate.verify(new_token, "control").jti == "j1"
    assert gate.public_key.error is not None
    # leases of versions before key ids (no kid) verify against any trusted key
    legacy = jwt.encode(claims.model_dump(exclude_none=True), old, algorithm="EdDSA")
    assert gate.verify(legacy, "control").jti == "j1"
