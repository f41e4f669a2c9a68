"""Test plumbing for evaluation jobs seen from outside the service.

`ThreadedService`: the real app (`create_app`) under uvicorn on a free loopback port, in a
thread of the test process, so a test can choose settings that `raasd serve` has no flag for
(the bundle size limit, the claim timeout). Clients reach it over real sockets, subprocesses
included.

`RobotSide`: a robot's side of the jobs protocol over HTTP with its robot token (heartbeat with
a directory entry, claim, episode recordings and results, finish), exactly the requests a job
worker sends (docs/service.md, "Jobs"), so a test can put a job into running, succeeded or
failed without a simulated rig.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from raas.service.app import create_app
from raas.service.settings import Settings
from tests.service.harness import free_port


class ThreadedService:
    """`create_app(settings)` under uvicorn in a thread; `start()` returns once it listens."""

    def __init__(self, settings: Settings, port: int = 0) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="service", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ThreadedService:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Claim:
    job: dict[str, Any]
    attempt: int
    body: dict[str, Any]

    @property
    def job_id(self) -> int:
        return int(self.job["id"])


class RobotSide:
    """One robot's requests to the service, with its robot token."""

    def __init__(self, base_url: str, robot_id: int, token: str, name: str) -> None:
        self.robot_id = robot_id
        self.name = name
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0
        )

    def close(self) -> None:
        self.http.close()

    def heartbeat(self, hand_model: str = "shadow-dexterous") -> None:
        """Online, available, registered (a claim needs all three)."""
        r = self.http.post(
            f"/robots/{self.robot_id}/heartbeat",
            json={
                "status": "available",
                "directory": {
                    "control_endpoint": f"tcp://127.0.0.1:{free_port()}",
                    "stream_endpoint": "",
                    "server_public_key": "",
                    "hand_model": hand_model,
                    "devices": [{"key": "hand", "driver": "sim"}],
                    "capabilities": ["observe", "remote_step", "run_bundle"],
                },
            },
        )
        assert r.status_code == 200, r.text

    def claim(self, wait_s: float = 10.0) -> Claim:
        """Claim the next job this robot qualifies for; fails the test if none comes."""
        deadline = time.monotonic() + wait_s + 20
        while time.monotonic() < deadline:
            r = self.http.post(
                f"/robots/{self.robot_id}/jobs/claim", params={"wait": wait_s}, timeout=wait_s + 30
            )
            if r.status_code == 200:
                body = r.json()
                return Claim(job=body["job"], attempt=int(body["attempt"]), body=body)
            assert r.status_code == 204, r.text
        raise AssertionError(f"{self.name}: no job to claim")

    def job_heartbeat(self, claim: Claim) -> dict[str, Any]:
        r = self.http.post(f"/jobs/{claim.job_id}/attempts/{claim.attempt}/heartbeat")
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def episode(
        self,
        claim: Claim,
        index: int,
        successes: int,
        *,
        end_reason: str = "timeout",
        recording: bytes | None = None,
        upload: bool = True,
    ) -> bytes:
        """Upload an episode's recording (unless not `upload`) and post its result; returns the
        recording's bytes."""
        data = recording if recording is not None else fake_recording(claim.job_id, index)
        base = f"/jobs/{claim.job_id}/attempts/{claim.attempt}/episodes"
        if upload:
            r = self.http.put(
                f"{base}/{index}/recording",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert r.status_code in (200, 201), r.text
        r = self.http.post(
            base,
            json={
                "index": index,
                "successes": successes,
                "end_reason": end_reason,
                "cycles": 156,
                "seconds": 12.5,
                "safety_stop": False,
                "timing": {"reset_s": 0.4, "run_s": 12.5},
                "recording_sha256": hashlib.sha256(data).hexdigest() if upload else None,
            },
        )
        assert r.status_code == 200, r.text
        return data

    def finish(self, claim: Claim, outcome: str = "succeeded", message: str = "") -> None:
        r = self.http.post(
            f"/jobs/{claim.job_id}/attempts/{claim.attempt}/finish",
            json={"outcome": outcome, "message": message},
        )
        assert r.status_code == 200, r.text


def fake_recording(job_id: int, index: int) -> bytes:
    """Bytes that stand for an episode's MCAP file (the service stores them as they are)."""
    return b"\x89MCAP0\r\n" + f"job {job_id} episode {index}".encode() + bytes(range(256)) * 8
