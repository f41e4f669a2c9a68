"""`raasd serve`: run the reservation service (upgrading its database first).

`--workers N` runs N uvicorn worker processes on one socket. The parent migrates the database,
makes the signing key and seeds the demo once; then each worker builds its app from the
settings the parent hands down in `SETTINGS_ENV` (`worker_app`, a uvicorn factory). What the
workers share, and how, is in docs/service.md, "Several service workers".
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

#: The settings (JSON) a worker process builds its app from.
SETTINGS_ENV = "RAAS_SERVICE_SETTINGS_JSON"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="run the reservation service (HTTP API and booking page)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL (default: $RAAS_DATABASE_URL or sqlite:///var/raas.db); "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    )
    parser.add_argument("--signing-key", type=Path, default=None, help="lease signing key (PEM)")
    parser.add_argument(
        "--retired-signing-key",
        type=Path,
        action="append",
        default=None,
        help="an earlier signing key after a rotation (repeatable); its leases verify until "
        "they end",
    )
    parser.add_argument("--web-dir", type=Path, default=None, help="booking page directory")
    parser.add_argument("--demo", action="store_true", help="seed demo users and robots")
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="uvicorn worker processes (default 1); on PostgreSQL feeds and caches follow "
        "each other through LISTEN/NOTIFY (docs/service.md, 'Several service workers')",
    )
    parser.set_defaults(func=_serve)


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"--workers must be a whole number 1..64, not {text!r}")
    return n


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn factory), from the parent's settings."""
    from raas.service.app import create_app
    from raas.service.settings import Settings

    return create_app(Settings.model_validate_json(os.environ[SETTINGS_ENV]))


def _default_web_dir() -> Path | None:
    candidate = Path(__file__).resolve().parents[2] / "clients" / "web"
    return candidate if candidate.is_dir() else None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from raas.service.app import create_app, create_state
    from raas.service.seed import seed_demo
    from raas.service.settings import Settings

    settings = Settings.from_env(
        database_url=args.database_url,
        signing_key_path=args.signing_key,
        retired_signing_keys=tuple(args.retired_signing_key) if args.retired_signing_key else None,
        web_dir=args.web_dir,
    )
    if settings.web_dir is None and (web := _default_web_dir()) is not None:
        settings = settings.model_copy(update={"web_dir": web})
    base = f"http://{args.host}:{args.port}/"
    if args.workers == 1:
        app = create_app(settings)
        state = app.state.service
    else:  # migrate, make the key and seed once, here; the workers only open the database
        state = create_state(settings)
    if args.demo:
        logins = seed_demo(state)
        print(f"booking page: {base}", flush=True)
        for login in logins:
            print(f"demo login ({login.role}): {login.email} / {login.password}", flush=True)
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    print(f"raas reservation service on {base} (API docs {base}docs{workers})", flush=True)
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
        return 0
    state.db.dispose()
    worker_settings = settings.model_copy(
        update={"migrate": False, "signing_key_path": settings.signing_key_path.resolve()}
    )
    os.environ[SETTINGS_ENV] = worker_settings.model_dump_json()
    uvicorn.run(
        "raas.service.cli:worker_app",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
    )
    return 0
