"""`RemoteRobot.upload` keeps several chunks in flight (the robot reads control messages once a
cycle): the robot stores the same bytes in order, and a refused chunk raises, whatever the
window."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot
from raas_client.wire import Msg

from tests.transport.harness import LeaseIssuer, start_daemon

pytestmark = [pytest.mark.system, pytest.mark.slow]


def test_windowed_uploads_store_the_same_bytes(tmp_path: Path) -> None:
    issuer = LeaseIssuer.create(tmp_path / "lease")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 12345))  # 13 chunks, 1 short
    d = start_daemon(tmp_path / "robot", issuer, rate=12.5, clock="realtime")
    try:
        c = RemoteRobot(d.control, server_key=d.key, lease=issuer.issue(), timeout_s=10)
        c.open("control")
        seen: list[int] = []
        # upload_end checks the size and the sha256 of what was stored, in order
        one = c.upload(bundle, window=1)
        eight = c.upload(bundle, progress=lambda done, _total: seen.append(done), window=8)
        assert one == eight
        assert seen == sorted(seen) and seen[-1] == len(bundle_bytes(c, bundle))
        with pytest.raises(ValueError, match="window"):
            c.upload(bundle, window=0)
        c.close()
    finally:
        d.stop()


def bundle_bytes(_: RemoteRobot, bundle: Path) -> bytes:
    from raas_client import bundles

    return bundles.pack(bundle)


class _SkipsAChunk(RemoteRobot):
    """Sends the third chunk at a wrong offset, as a buggy or hostile client would."""

    def _send(self, kind: str, fields: Any = None, arrays: Any = None) -> int:
        if kind == Msg.UPLOAD_CHUNK and fields and fields["offset"] == 2 * 256 * 1024:
            fields = {"offset": fields["offset"] + 1}
        return super()._send(kind, fields, arrays)


def test_a_refused_chunk_raises_the_first_refusal(tmp_path: Path) -> None:
    issuer = LeaseIssuer.create(tmp_path / "lease")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    d = start_daemon(tmp_path / "robot", issuer, rate=12.5, clock="realtime")
    try:
        c = _SkipsAChunk(d.control, server_key=d.key, lease=issuer.issue(), timeout_s=10)
        c.open("control")
        with pytest.raises(RemoteError) as err:
            c.upload(bundle, window=8)
        # the wrong offset itself, not the "no upload in progress" of the chunks behind it
        assert err.value.code == "bad_request" and "expected 524288" in str(err.value)
        assert c.status()["mode"] == "hold"  # the robot goes on
        c.close()
    finally:
        d.stop()
