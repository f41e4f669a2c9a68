"""`raasd serve`: run the reservation service (upgrading its database first)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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
    parser.set_defaults(func=_serve)


def _default_web_dir() -> Path | None:
    candidate = Path(__file__).resolve().parents[2] / "clients" / "web"
    return candidate if candidate.is_dir() else None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from raas.service.app import create_app
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
    app = create_app(settings)
    base = f"http://{args.host}:{args.port}/"
    if args.demo:
        logins = seed_demo(app.state.service)
        print(f"booking page: {base}", flush=True)
        for login in logins:
            print(f"demo login ({login.role}): {login.email} / {login.password}", flush=True)
    print(f"raas reservation service on {base} (API docs {base}docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0
