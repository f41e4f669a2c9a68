"""The robot side of the jobs API (docs/fleet.md, "The robot side"), over HTTP with the robot's
token (RAAS_ROBOT_TOKEN):

    POST /robots/{id}/jobs/claim?wait=S                    -> Claim | None (204)
    POST /jobs/{job}/attempts/{n}/heartbeat                -> Beat(hold_until, cancel)
    PUT  /jobs/{job}/attempts/{n}/episodes/{i}/recording   the episode's MCAP bytes
    POST /jobs/{job}/attempts/{n}/episodes                 the episode's result
    POST /jobs/{job}/attempts/{n}/finish                   succeeded | failed | interrupted
    GET  /bundles/{sha256}                                 the bundle (checked, cached by hash)
    GET  /robots/{id}                                      its directory entry (endpoint, key)

A refusal raises ServiceRefusedError (409 stale_attempt: StaleAttemptError); no answer or a 5xx
raises ServiceUnreachableError.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from raas.fleet.errors import (
    BundleMismatchError,
    ServiceRefusedError,
    ServiceUnreachableError,
    StaleAttemptError,
)

TOKEN_ENV = "RAAS_ROBOT_TOKEN"


def epoch(value: Any) -> float:
    """An ISO 8601 time (the service's JSON) as unix seconds."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


@dataclass(slots=True)
class Claim:
    """What a claim hands the robot: the job, this attempt, how long the robot is held for it,
    and the control lease (valid until hold_until) with the robot's endpoint and server key."""

    job: dict[str, Any]
    attempt: int
    hold_until: float  # unix seconds
    lease: str
    endpoint: str | None
    server_key: str | None

    @property
    def job_id(self) -> int:
        return int(self.job["id"])


@dataclass(slots=True)
class Beat:
    hold_until: float
    cancel: bool


class ServiceClient:
    def __init__(
        self,
        base_url: str,
        robot_id: int,
        token: str | None = None,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        self.robot_id = robot_id
        self.timeout_s = timeout_s
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ plumbing
    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        headers = {"Content-Type": "application/octet-stream"} if content is not None else None
        try:
            r = self.http.request(
                method,
                path,
                json=json,
                content=content,
                params=params,
                headers=headers,
                timeout=timeout_s if timeout_s is not None else self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise ServiceUnreachableError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if r.status_code >= 500:
            raise ServiceUnreachableError(f"{method} {path}: {r.status_code} {r.text[:200]}")
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {}
            code = str(body.get("error", "")) if isinstance(body, dict) else ""
            detail = str(body.get("detail", r.text[:200])) if isinstance(body, dict) else r.text
            cls = StaleAttemptError if code == "stale_attempt" else ServiceRefusedError
            raise cls(r.status_code, code or "refused", detail)
        return r

    def _attempt(self, job_id: int, attempt: int) -> str:
        return f"/jobs/{job_id}/attempts/{attempt}"

    # ------------------------------------------------------------------ the API
    def robot(self) -> dict[str, Any]:
        """The robot's own entry (its directory: control_endpoint, server_public_key, name)."""
        data: dict[str, Any] = self._call("GET", f"/robots/{self.robot_id}").json()
        return data

    def claim(self, wait_s: float = 0.0) -> Claim | None:
        """The next job this robot qualifies for, or None (after up to wait_s of long poll)."""
        r = self._call(
            "POST",
            f"/robots/{self.robot_id}/jobs/claim",
            params={"wait": wait_s} if wait_s > 0 else None,
            timeout_s=self.timeout_s + wait_s,
        )
        if r.status_code == 204 or not r.content:
            return None
        d = r.json()
        return Claim(
            job=dict(d["job"]),
            attempt=int(d["attempt"]),
            hold_until=epoch(d["hold_until"]),
            lease=str(d["lease"]["token"] if isinstance(d["lease"], dict) else d["lease"]),
            endpoint=d.get("endpoint") or None,
            server_key=d.get("server_key") or None,
        )

    def heartbeat(self, job_id: int, attempt: int) -> Beat:
        d = self._call("POST", self._attempt(job_id, attempt) + "/heartbeat").json()
        return Beat(epoch(d["hold_until"]), bool(d.get("cancel", False)))

    def upload_recording(self, job_id: int, attempt: int, index: int, path: Path) -> str:
        """PUT the episode's recording; its sha256 (what the episode's result names)."""
        data = path.read_bytes()
        url = f"{self._attempt(job_id, attempt)}/episodes/{index}/recording"
        self._call("PUT", url, content=data, timeout_s=max(self.timeout_s, 120.0))
        return hashlib.sha256(data).hexdigest()

    def post_episode(self, job_id: int, attempt: int, result: dict[str, Any]) -> None:
        self._call("POST", self._attempt(job_id, attempt) + "/episodes", json=result)

    def finish(self, job_id: int, attempt: int, outcome: str, message: str = "") -> None:
        body = {"outcome": outcome, "message": message}
        self._call("POST", self._attempt(job_id, attempt) + "/finish", json=body)

    def bundle(self, sha256: str, cache_dir: Path) -> Path:
        """The bundle's bytes as a file in cache_dir (named by its hash; downloaded once, checked
        against the hash, written to a temp file and renamed so a half file never stays)."""
        dest = cache_dir / f"{sha256}.bundle"
        if dest.is_file() and _sha256_file(dest) == sha256:
            return dest
        cache_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=cache_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                try:
                    with self.http.stream("GET", f"/bundles/{sha256}", timeout=120.0) as r:
                        if r.status_code >= 400:
                            r.read()
                            self._raise_for(r, f"GET /bundles/{sha256}")
                        for chunk in r.iter_bytes():
                            digest.update(chunk)
                            f.write(chunk)
                except httpx.HTTPError as exc:
                    raise ServiceUnreachableError(f"GET /bundles/{sha256}: {exc}") from exc
            if digest.hexdigest() != sha256:
                raise BundleMismatchError(
                    f"the bundle the service sent hashes to {digest.hexdigest()}, not {sha256}"
                )
            Path(tmp).replace(dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest

    def _raise_for(self, r: httpx.Response, what: str) -> None:
        if r.status_code >= 500:
            raise ServiceUnreachableError(f"{what}: {r.status_code}")
        try:
            body = r.json()
        except ValueError:
            body = {}
        raise ServiceRefusedError(
            r.status_code, str(body.get("error", "refused")), str(body.get("detail", ""))
        )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
