"""Evaluation jobs on the reservation service, over HTTP (docs/fleet.md, "Submitting jobs").

    service = directory.service_from()          # URL and token: flags, env, ~/.config/raas
    jobs = JobsClient(service)
    sha = jobs.upload_bundle(Path("my-bundle"))  # HEAD, then PUT only if the service lacks it
    job = jobs.submit(JobRequest(bundle_sha256=sha, episodes=10, hand_model="shadow"))
    # or a policy server the robot dials for each episode (raas serve-policy --bind ...):
    job = jobs.submit(JobRequest(episodes=10, policy_server=PolicyServer(ENDPOINT, KEY)))
    jobs.get(job.id).status                     # queued | running | succeeded | failed | ...
    for event in jobs.logs(job.id): ...
    jobs.fetch_recording(job.id, 0, Path("out"))

Every refusal raises a `ServiceRefusedError` (or the subclass named by its code, see
`raas_client.errors`) whose message is the service's own detail, with the field at fault for a
request the service could not take.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from raas_client import bundles
from raas_client.directory import Service
from raas_client.errors import (
    BundleHashMismatchError,
    BundleNotFoundError,
    BundleTooLargeError,
    JobNotFoundError,
    NoQualifyingRobotError,
    ServiceRefusedError,
    ServiceUnreachableError,
    UnknownRobotError,
)

#: Job states; the last four are final.
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")
FINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
TASKS = ("reorientation",)
#: Bytes per PUT chunk (also how often the upload progress callback is called).
UPLOAD_CHUNK = 1 << 20

_ERRORS: dict[str, type[ServiceRefusedError]] = {
    "bundle_not_found": BundleNotFoundError,
    "bundle_too_large": BundleTooLargeError,
    "bundle_hash_mismatch": BundleHashMismatchError,
    "unknown_robot": UnknownRobotError,
    "no_qualifying_robot": NoQualifyingRobotError,
    "job_not_found": JobNotFoundError,
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class PolicyServer:
    """A policy server the robot dials for each episode of a job (`raas serve-policy --bind`):
    its tcp://HOST:PORT, its CurveZMQ public key (Z85, 40 characters), the chunk size H."""

    endpoint: str
    server_key: str
    horizon: int = 16
    blend: str = "newest"

    def body(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "server_key": self.server_key,
            "horizon": self.horizon,
            "blend": self.blend,
        }


@dataclass(frozen=True, slots=True)
class JobRequest:
    """The body of `POST /jobs`. The policy: `bundle_sha256` (an uploaded bundle) or
    `policy_server`, exactly one (the service refuses both or neither). `robot` and
    `hand_model` None: any robot qualifies."""

    bundle_sha256: str | None = None
    episodes: int = 1
    task: str = "reorientation"
    robot: str | None = None
    hand_model: str | None = None
    priority: int = 5
    deadline: datetime | None = None
    seed: int = 0
    episode_timeout_s: float | None = None
    policy_server: PolicyServer | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task,
            "episodes": self.episodes,
            "robot": self.robot,
            "hand_model": self.hand_model,
            "priority": self.priority,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "seed": self.seed,
        }
        if self.episode_timeout_s is not None:
            out["episode_timeout_s"] = self.episode_timeout_s
        if self.bundle_sha256 is not None:
            out["bundle_sha256"] = self.bundle_sha256
        if self.policy_server is not None:
            out["policy_server"] = self.policy_server.body()
        return out


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the service answers it (`raw` keeps every field, newer ones included)."""

    id: int
    user: str
    status: str
    task: str
    episodes: int
    episodes_done: int
    robot: str | None
    hand_model: str | None
    priority: int
    seed: int
    attempt: int
    claimed_by: str | None
    bundle_sha256: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    deadline: str | None
    message: str
    results: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def policy_server(self) -> PolicyServer | None:
        """The policy server the job names (None: it runs `bundle_sha256`)."""
        ps = self.raw.get("policy_server")
        if not isinstance(ps, dict):
            return None
        return PolicyServer(
            str(ps.get("endpoint", "")),
            str(ps.get("server_key", "")),
            int(ps.get("horizon") or 16),
            str(ps.get("blend") or "newest"),
        )

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Job:
        def opt(key: str) -> str | None:
            value = body.get(key)
            return None if value is None else str(value)

        results = body.get("results") or []
        return cls(
            id=int(body["id"]),
            user=str(body.get("user") or body.get("user_id") or ""),
            status=str(body["status"]),
            task=str(body.get("task", "")),
            episodes=int(body.get("episodes", 0)),
            episodes_done=int(body.get("episodes_done", 0)),
            robot=opt("robot"),
            hand_model=opt("hand_model"),
            priority=int(body.get("priority", 5)),
            seed=int(body.get("seed", 0)),
            attempt=int(body.get("attempt") or 0),
            claimed_by=opt("claimed_by"),
            bundle_sha256=str(body.get("bundle_sha256") or ""),
            created_at=str(body.get("created_at", "")),
            started_at=opt("started_at"),
            finished_at=opt("finished_at"),
            deadline=opt("deadline"),
            message=str(body.get("message") or ""),
            results=[r for r in results if isinstance(r, dict)],
            raw=body,
        )


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One line of a job's log: submitted, claimed, episode, requeued, finished, cancelled,
    expired, interrupted."""

    seq: int
    at: str
    kind: str
    message: str
    data: dict[str, Any]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> JobEvent:
        data = body.get("data")
        return cls(
            seq=int(body.get("seq", 0)),
            at=str(body.get("at", "")),
            kind=str(body.get("kind", "")),
            message=str(body.get("message") or ""),
            data=data if isinstance(data, dict) else {},
        )


class JobsClient:
    """The researcher's side of the jobs and bundles routes. One HTTP connection pool; use as a
    context manager or call `close()`."""

    def __init__(
        self,
        service: Service,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.service = service
        self.http = httpx.Client(
            base_url=service.url,
            headers={"Authorization": f"Bearer {service.token}"},
            timeout=timeout_s,
            transport=transport,
        )

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------- bundles
    def has_bundle(self, sha256: str) -> bool:
        """True when the service already holds the bundle (`HEAD /bundles/{sha256}`)."""
        r = self._send("HEAD", f"/bundles/{sha256}", ok=(200, 404))
        return r.status_code == 200

    def put_bundle(self, data: bytes, sha256: str, progress: Progress | None = None) -> bool:
        """Store the bytes under their sha256; True when they were new (201), False when the
        service had them already (200)."""
        size = len(data)

        def chunks() -> Iterator[bytes]:
            view = memoryview(data)
            for offset in range(0, size, UPLOAD_CHUNK):
                chunk = bytes(view[offset : offset + UPLOAD_CHUNK])
                yield chunk
                if progress is not None:
                    progress(offset + len(chunk), size)

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        r = self._send("PUT", f"/bundles/{sha256}", content=chunks(), headers=headers)
        return r.status_code == 201

    def upload_bundle(self, path: Path, progress: Progress | None = None) -> tuple[str, bool]:
        """Pack the bundle (`raas_client.bundles.pack`) and upload it once: (sha256, sent),
        `sent` False when the service already had those bytes."""
        data = bundles.pack(path)
        sha = bundles.sha256(data)
        if self.has_bundle(sha):
            return sha, False
        self.put_bundle(data, sha, progress)
        return sha, True

    # ------------------------------------------------------------- jobs
    def submit(self, request: JobRequest) -> Job:
        return Job.from_json(self._json("POST", "/jobs", json=request.body()))

    def list_jobs(self, *, status: str | None = None, mine: bool | None = None) -> list[Job]:
        """Your jobs (staff: everyone's, unless `mine`), newest first as the service orders."""
        params: dict[str, str] = {}
        if status:
            params["status"] = status
        if mine is not None:
            params["mine"] = "true" if mine else "false"
        body = self._json("GET", "/jobs", params=params)
        items = body if isinstance(body, list) else body.get("jobs", body.get("items", []))
        return [Job.from_json(j) for j in items]

    def get(self, job_id: int) -> Job:
        return Job.from_json(self._json("GET", f"/jobs/{int(job_id)}", job=job_id))

    def cancel(self, job_id: int) -> Job:
        return Job.from_json(self._json("POST", f"/jobs/{int(job_id)}/cancel", job=job_id))

    def logs(self, job_id: int, *, since: int = 0) -> list[JobEvent]:
        """The job's events after sequence number `since`, oldest first (all of them: the
        service's pages are followed)."""
        out: list[JobEvent] = []
        while True:
            body = self._json(
                "GET", f"/jobs/{int(job_id)}/logs", job=job_id, params={"since": since}
            )
            items = body if isinstance(body, list) else body.get("events", [])
            page = [JobEvent.from_json(e) for e in items]
            page = [e for e in page if e.seq > since]  # a service that ignores `since`
            if not page:
                return out
            out.extend(page)
            since = page[-1].seq

    def fetch_recording(self, job_id: int, index: int, dest: Path) -> Path:
        """Download episode `index`'s MCAP recording to `dest` (a file, or a directory: then
        `job<ID>-ep<INDEX>.mcap` in it). Written to `<dest>.part` and renamed when complete, so
        a refused or broken download leaves no file."""
        if dest.is_dir():
            dest = dest / f"job{int(job_id)}-ep{int(index):03d}.mcap"
        part = dest.with_name(dest.name + ".part")
        path = f"/jobs/{int(job_id)}/episodes/{int(index)}/recording"
        try:
            with self.http.stream("GET", path) as r:
                if r.status_code >= 400:
                    r.read()
                    self._raise(r, path, job_id)
                with part.open("wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
            part.replace(dest)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        finally:
            part.unlink(missing_ok=True)
        return dest

    # ------------------------------------------------------------- plumbing
    def _json(self, method: str, path: str, *, job: int | None = None, **kw: Any) -> Any:
        r = self._send(method, path, job=job, **kw)
        try:
            return r.json()
        except ValueError as exc:
            raise ServiceRefusedError(
                "bad_answer", f"{self.service.url}{path}: not JSON ({r.status_code})"
            ) from exc

    def _send(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (),
        job: int | None = None,
        **kw: Any,
    ) -> httpx.Response:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if r.status_code >= 400 and r.status_code not in ok:
            self._raise(r, path, job)
        return r

    def _unreachable(self, exc: httpx.HTTPError) -> ServiceUnreachableError:
        return ServiceUnreachableError(
            f"the reservation service at {self.service.url} is unreachable: {exc}"
        )

    def _raise(self, r: httpx.Response, path: str, job: int | None) -> None:
        try:
            body = r.json()
        except ValueError:
            body = None
        code = str(body.get("error", "")) if isinstance(body, dict) else ""
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):  # invalid_request: the fields at fault
            message = "; ".join(describe_invalid(d) for d in detail if isinstance(d, dict))
        elif detail:
            message = str(detail)
        else:
            message = r.text.strip() or r.reason_phrase
        if job is not None and r.status_code == 404 and code in ("", "not_found"):
            code = "job_not_found"
            message = f"no job {job} (or not yours: researchers see their own jobs)"
        code = code or f"http_{r.status_code}"
        raise _ERRORS.get(code, ServiceRefusedError)(code, message, r.status_code)


def describe_invalid(item: dict[str, Any]) -> str:
    """One entry of a 422 `invalid_request` answer in words: `episodes: Input should be less
    than or equal to 1000 (got 5000)`."""
    loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
    where = ".".join(loc) or "request"
    got = (
        f" (got {item['input']!r})"
        if "input" in item and not isinstance(item["input"], dict)
        else ""
    )
    return f"{where}: {item.get('msg', 'invalid')}{got}"
