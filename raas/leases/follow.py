"""The daemon's side of revocation: follow the service's feed and remember revoked `jti`s.

`RevocationFollower.poll()` long-polls `GET /robots/{id}/revocations?since=<cursor>&wait=<s>`:
the service answers the moment a lease of this robot is revoked (push), or after `wait`
seconds with nothing (then the daemon simply asks again: polling is the fallback that needs no
open stream). Call `poll()` in a loop in a thread or process of its own, never in the control
loop; `revoked` is what `verify_lease(..., revoked=...)` checks against.
"""

from __future__ import annotations

import threading
from datetime import datetime

import httpx


class RevokedSet:
    """Thread-safe set of revoked lease ids, forgetting each once its lease has expired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def add(self, jti: str, expires_at: float) -> None:
        with self._lock:
            self._expiry[jti] = expires_at

    def __contains__(self, jti: object) -> bool:
        with self._lock:
            return jti in self._expiry

    def prune(self, now: float) -> None:
        with self._lock:
            self._expiry = {j: e for j, e in self._expiry.items() if e > now}


class RevocationFollower:
    def __init__(
        self, base_url: str, robot_id: int, token: str, *, since: int = 0, wait: float = 25.0
    ) -> None:
        self.robot_id = robot_id
        self.cursor = since
        self.wait = wait
        self.revoked = RevokedSet()
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=wait + 10.0),
        )

    def poll(self) -> list[str]:
        """One long-poll round; returns the newly revoked `jti`s (possibly none)."""
        r = self._client.get(
            f"/robots/{self.robot_id}/revocations",
            params={"since": self.cursor, "wait": self.wait},
        )
        r.raise_for_status()
        body = r.json()
        new = []
        for entry in body["revocations"]:
            expires = datetime.fromisoformat(entry["expires_at"]).timestamp()
            self.revoked.add(entry["jti"], expires)
            new.append(entry["jti"])
        self.cursor = int(body["cursor"])
        return new

    def close(self) -> None:
        self._client.close()
