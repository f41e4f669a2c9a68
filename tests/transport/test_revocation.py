"""A revocation pushed by the reservation service closes the session within 1 s.

The service's side is a small long-poll server speaking the feed of docs/service.md
(`GET /robots/{id}/revocations?since&wait`); the daemon's relay process follows it with the
real RevocationFollower and the loop drains the relay's socket inside its cycle."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from raas_client.errors import RemoteError
from raas_client.session import RemoteRobot
from raas_client.wire import Topic

from raas.leases import load_public_key, verify_lease
from tests.transport.harness import LeaseIssuer, start_daemon, wait_for

pytestmark = [pytest.mark.system, pytest.mark.slow]


class Feed:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.tokens: list[str] = []

    def revoke(self, jti: str) -> None:
        with self.changed:
            self.entries.append(
                {
                    "seq": len(self.entries) + 1,
                    "jti": jti,
                    "expires_at": datetime.fromtimestamp(time.time() + 3600, UTC).isoformat(),
                }
            )
            self.changed.notify_all()


@pytest.fixture
def feed() -> Iterator[tuple[Feed, str]]:
    feed = Feed()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            q = parse_qs(url.query)
            since, wait = int(q["since"][0]), float(q["wait"][0])
            feed.tokens.append(self.headers.get("Authorization", ""))
            with feed.changed:
                feed.changed.wait_for(lambda: len(feed.entries) > since, timeout=wait)
                new = feed.entries[since:]
            body = json.dumps({"robot_id": 1, "cursor": since + len(new), "revocations": new})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield feed, f"http://127.0.0.1:{server.server_address[1]}"
    with feed.changed:
        feed.changed.notify_all()
    server.shutdown()


def test_revocation_closes_the_session_within_1s(
    tmp_path: Path, issuer: LeaseIssuer, feed: tuple[Feed, str]
) -> None:
    fd, url = feed
    d = start_daemon(
        tmp_path / "robot",
        issuer,
        extra=("--revocations", url, "--robot-id", "1"),
        env={"RAAS_ROBOT_TOKEN": "daemon-token"},
    )
    token = issuer.issue()
    jti = verify_lease(token, load_public_key(issuer.pub_path.read_bytes()), robot="shadow-1").jti
    robot = RemoteRobot(d.control, server_key=d.key, lease=token)
    stream = robot.stream((Topic.STEP,))
    try:
        robot.open("control")
        robot.arm()
        idle = np.array(robot.info["spaces"]["action"]["idle"])
        obs = robot.observation()
        for _ in range(10):
            robot.act(obs.cycle, idle)
            obs = robot.observation(after=obs.cycle)
        # The relay process follows the feed with the daemon's token.
        assert wait_for(lambda: robot.heartbeat() or bool(fd.tokens), 15)
        assert fd.tokens[0] == "Bearer daemon-token"
        fd.revoke(jti)
        t0 = time.monotonic()
        while robot.closed_reason is None and time.monotonic() - t0 < 5:
            robot.act(obs.cycle, idle)
            try:
                obs = robot.observation(after=obs.cycle, timeout_s=0.2)
            except Exception:
                robot.heartbeat()
        took = time.monotonic() - t0
        assert robot.closed_reason == "lease_revoked"
        assert took < 1.0, f"revocation took {took:.3f} s"
        # The stream stops too: nothing published after the session closed reaches this client
        # (docs/protocol.md, "Who receives the stream": the close's cycle, at most one more).
        closed = next(e for e in robot.events(1.0) if e.get("kind") == "session_closed")
        steps: list[int] = []
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            if (m := stream.recv(timeout_s=0.1)) is not None:
                steps.append(int(m[1]["mono_ns"]))
        assert steps, "the session's stream never arrived"
        after = max(steps) - int(closed["closed_ns"])
        assert after < 1e9, f"the revoked session got steps {after / 1e9:.3f} s after its close"
        # The revoked lease cannot open a new session.
        with pytest.raises(RemoteError) as err:
            robot.open("control")
        assert err.value.code == "lease_revoked"
    finally:
        stream.close()
        robot.close()
        d.stop()
