"""Service configuration: one immutable object, built from arguments or RAAS_* environment."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import make_url

DEFAULT_STATE_DIR = Path(os.environ.get("RAAS_STATE_DIR", "var"))


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: SQLAlchemy URL. `sqlite:///path.db` (default) or `postgresql+psycopg://user@host/db`.
    database_url: str = f"sqlite:///{DEFAULT_STATE_DIR / 'raas.db'}"
    #: The service's Ed25519 lease signing key; generated on first start.
    signing_key_path: Path = DEFAULT_STATE_DIR / "lease-signing-key.pem"
    #: Earlier signing keys (PEM files, private or public) after a rotation: leases they signed
    #: keep verifying until they end (GET /robots/{id}/lease-key lists them while any is live).
    retired_signing_keys: tuple[Path, ...] = ()
    #: `iss` of every lease this service signs.
    issuer: str = "raas-reservations"
    #: Name of the login session cookie the booking page uses.
    cookie_name: str = "raas_session"
    #: Mark the session cookie Secure (set when served over HTTPS).
    cookie_secure: bool = False
    #: Lifetime of a login session (hours).
    session_hours: float = 12.0
    #: A robot without a heartbeat for this long is reported offline.
    heartbeat_timeout_s: float = 30.0
    #: How long a process trusts a cached token without reading it again (seconds). Commits
    #: of any service process empty every process's cache at once on PostgreSQL (notify
    #: channel `tokens`); this bounds a change no process announced (SQLite with several
    #: workers, a listener reconnecting, a script writing the database).
    token_cache_ttl_s: float = Field(default=1.0, ge=0)
    #: Wake other service processes through PostgreSQL LISTEN/NOTIFY (raas/service/notify.py).
    #: Off: each process's waiters find other processes' changes by polling every 0.25 s
    #: (needed behind a pooler in transaction mode, where LISTEN cannot work).
    notify_listen: bool = True
    #: Longest a revocation long-poll may wait (seconds).
    max_poll_wait_s: float = 30.0
    #: Directory of the booking page's static files, served at `/` when it exists.
    web_dir: Path | None = None
    #: Run Alembic migrations at start-up.
    migrate: bool = True
    #: Default wear thresholds per actuator, counted since the last staff reset (a robot's own
    #: thresholds, PUT /robots/{id}/wear/thresholds, override them; None = no threshold).
    #: Joint travel in radians (about a year of daily one-hour sessions at 0.3 rad/s).
    wear_travel_rad: float | None = 400_000.0
    #: Seconds spent above the load fraction of the actuator's force limit.
    wear_load_s: float | None = 100.0 * 3600.0
    #: Largest |effort| / force limit seen (1.0 = at the limit).
    wear_peak_effort: float | None = 1.1
    #: Hours the actuator ran under a controller.
    wear_hours_run: float | None = 200.0

    #: Booking rules (seconds); a robot's own value (PATCH /robots/{id}) overrides each.
    #: Starts and ends fall on multiples of the granularity, counted from midnight UTC.
    booking_granularity_s: int = Field(default=60, ge=1, le=86_400)
    #: Shortest booking.
    min_booking_s: int = Field(default=60, ge=1)
    #: Longest booking a researcher may make (None: no limit).
    max_booking_s: int | None = Field(default=24 * 3600, ge=1)
    #: Longest booking staff and admins may make (None: no limit).
    staff_max_booking_s: int | None = Field(default=14 * 24 * 3600, ge=1)
    #: Free time kept between two bookings of one robot (reset, cool-down).
    buffer_s: int = Field(default=0, ge=0, le=86_400)
    #: The lab's time zone (IANA name): quota weeks run Monday 00:00 to Monday 00:00 there.
    lab_timezone: str = "UTC"
    #: Failed logins for one email before it is locked out, and the first lockout (seconds);
    #: each further failure while over the limit doubles it, up to `login_lockout_max_s`.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_s: float = Field(default=60.0, gt=0)
    login_lockout_max_s: float = Field(default=3600.0, gt=0)
    #: Failures older than this are forgotten.
    login_failure_window_s: float = Field(default=900.0, gt=0)

    #: Evaluation jobs (docs/fleet.md, "Evaluation jobs"). Content-addressed bundles and episode
    #: recordings live under this directory (`sha256/ab/abcdef...`); None: `blobs/` next to a
    #: SQLite database file, else `<RAAS_STATE_DIR>/blobs`.
    blob_dir: Path | None = None
    #: Largest request body of every route but the two uploads below (bytes): a larger one is
    #: refused with 413 `body_too_large` before it is read (raas/service/body_limit.py).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    #: Largest bundle `PUT /bundles/{sha256}` stores (bytes).
    max_bundle_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    #: Largest episode recording a job worker may upload (bytes).
    max_recording_bytes: int = Field(default=2 * 1024 * 1024 * 1024, ge=1)
    #: A claimed job whose worker sent no heartbeat for this long is requeued (its lease revoked).
    job_claim_timeout_s: float = Field(default=20.0, gt=0)
    #: Time one episode is expected to take when the job names no `episode_timeout_s`: with
    #: the margin, what a claim holds the robot for (remaining episodes x this + margin).
    job_episode_s: float = Field(default=60.0, gt=0)
    #: Added once to every hold (reset, bundle upload, the recording's fetch).
    job_hold_margin_s: float = Field(default=30.0, ge=0)
    #: How often the service requeues timed-out claims and expires jobs past their deadline.
    job_sweep_interval_s: float = Field(default=2.0, gt=0)

    @field_validator("lab_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
            ) from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.lab_timezone)

    @property
    def blobs(self) -> Path:
        """Where bundles and job recordings are stored (`blob_dir`, or its default)."""
        if self.blob_dir is not None:
            return self.blob_dir
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return Path(url.database).parent / "blobs"
        return DEFAULT_STATE_DIR / "blobs"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, then RAAS_DATABASE_URL / RAAS_SIGNING_KEY / RAAS_WEB_DIR / RAAS_LAB_TIMEZONE
        / RAAS_TOKEN_CACHE_TTL_S / RAAS_NOTIFY_LISTEN / RAAS_BLOB_DIR / RAAS_JOB_CLAIM_TIMEOUT_S,
        then overrides."""
        values: dict[str, object] = {}
        if url := os.environ.get("RAAS_DATABASE_URL"):
            values["database_url"] = url
        if key := os.environ.get("RAAS_SIGNING_KEY"):
            values["signing_key_path"] = Path(key)
        if web := os.environ.get("RAAS_WEB_DIR"):
            values["web_dir"] = Path(web)
        if retired := os.environ.get("RAAS_RETIRED_SIGNING_KEYS"):
            values["retired_signing_keys"] = tuple(Path(p) for p in retired.split(os.pathsep) if p)
        if zone := os.environ.get("RAAS_LAB_TIMEZONE"):
            values["lab_timezone"] = zone
        if ttl := os.environ.get("RAAS_TOKEN_CACHE_TTL_S"):
            values["token_cache_ttl_s"] = ttl
        if listen := os.environ.get("RAAS_NOTIFY_LISTEN"):
            values["notify_listen"] = listen
        if blobs := os.environ.get("RAAS_BLOB_DIR"):
            values["blob_dir"] = Path(blobs)
        if claim := os.environ.get("RAAS_JOB_CLAIM_TIMEOUT_S"):
            values["job_claim_timeout_s"] = claim
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
