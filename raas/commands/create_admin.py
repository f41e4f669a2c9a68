"""`raasd create-admin EMAIL`: the first admin of a new reservation service, or a new password
for an admin locked out (`--reset-password`), written straight into the service's database.

Every other account is made over the API by an admin (POST /users), so a fresh database needs
one admin made outside it; `raasd serve --demo` seeds published passwords and is for demos only.
The password comes from `--password-file` (its first line), from $RAAS_ADMIN_PASSWORD, or from
a prompt (asked twice) when standard input is a terminal; it is never an argument, where `ps`
and the shell's history would show it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from raas.commands.errors import AdminCommandError

#: The environment variable a password may come from (scripts, containers).
PASSWORD_ENV = "RAAS_ADMIN_PASSWORD"


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "create-admin",
        help="make the first admin of a reservation service database (or reset an admin's "
        "password)",
        description="Make an admin account in the reservation service's database (migrating "
        "it first, as `raasd serve` does). The password is read from --password-file, "
        f"${PASSWORD_ENV}, or asked for twice at a terminal.",
    )
    parser.add_argument("email", help="the admin's email (their login)")
    parser.add_argument("--name", default=None, help="display name (default: from the email)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL (default: $RAAS_DATABASE_URL or sqlite:///var/raas.db)",
    )
    parser.add_argument(
        "--password-file", type=Path, default=None, help="read the password from this file"
    )
    parser.add_argument(
        "--reset-password",
        action="store_true",
        help="the account exists: give it this password, make it an active admin again and "
        "end its login sessions",
    )
    parser.set_defaults(func=_create_admin)


def read_password(password_file: Path | None) -> str:
    """The new password from the file, the environment or a terminal prompt."""
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise AdminCommandError(f"cannot read --password-file: {exc}") from None
        return lines[0] if lines else ""
    if (value := os.environ.get(PASSWORD_ENV)) is not None:
        return value
    if not sys.stdin.isatty():
        raise AdminCommandError(
            f"no password: give --password-file or ${PASSWORD_ENV} (standard input is not a "
            "terminal to ask at)"
        )
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AdminCommandError("the two passwords differ")
    return first


def _create_admin(args: argparse.Namespace) -> int:
    try:
        message = create_admin(
            args.email,
            name=args.name,
            database_url=args.database_url,
            password=read_password(args.password_file),
            reset=args.reset_password,
        )
    except AdminCommandError as exc:
        print(f"raasd create-admin: {exc}", file=sys.stderr)
        return 2
    print(message)
    return 0


def create_admin(
    email: str, *, name: str | None, database_url: str | None, password: str, reset: bool
) -> str:
    """Make (or with `reset`, restore) the admin; return what was done, for the operator."""
    from raas.service.crud import audit
    from raas.service.crud import tokens as token_crud
    from raas.service.crud import users as user_crud
    from raas.service.db import Database
    from raas.service.migrate import upgrade
    from raas.service.models import Role, utcnow
    from raas.service.schemas import UserCreate
    from raas.service.security import hash_password
    from raas.service.settings import Settings

    try:
        data = UserCreate(
            email=email,
            name=name or email.split("@", maxsplit=1)[0].title(),
            role=Role.admin,
            password=password,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AdminCommandError(problems) from None
    settings = Settings.from_env(database_url=database_url)
    db = Database(settings.database_url)
    try:
        upgrade(db.engine)
        now = utcnow()
        with db.write() as session:
            user = user_crud.get_by_email(session, data.email)
            if user is None and reset:
                raise AdminCommandError(f"no account {data.email!r} to reset (leave out --reset)")
            if user is not None and not reset:
                raise AdminCommandError(
                    f"an account {data.email!r} exists ({user.role}); --reset-password gives "
                    "it a new password and makes it an active admin"
                )
            if user is None:
                user = user_crud.create_user(session, data, now)
                audit.record(
                    session, user, "user.create", f"user:{user.id}", now, via="raasd create-admin"
                )
                return f"admin {user.email} (user {user.id}) created in {settings.database_url}"
            user.password_hash = hash_password(password)
            user.role, user.active = Role.admin.value, True
            ended = token_crud.revoke_sessions(session, user, now, keep=None)
            audit.record(
                session,
                user,
                "user.update",
                f"user:{user.id}",
                now,
                fields=["active", "password", "role"],
                via="raasd create-admin --reset-password",
            )
            return f"admin {user.email} (user {user.id}): new password, {ended} sessions ended"
    finally:
        db.dispose()
