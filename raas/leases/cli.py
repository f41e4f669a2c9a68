"""`raasd lease keygen|issue|verify`: local lease keys and tokens, without the service."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from raas.leases.claims import LeaseClaims
from raas.leases.errors import LeaseError
from raas.leases.keys import (
    generate_private_key,
    load_private_key,
    load_public_key,
    save_private_key,
)
from raas.leases.tokens import sign_lease, verify_lease


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lease", help="generate lease keys, issue and verify lease tokens locally"
    )
    sub = parser.add_subparsers(dest="lease_command", metavar="ACTION", required=True)

    keygen = sub.add_parser("keygen", help="write a new Ed25519 private key and <key>.pub")
    keygen.add_argument("path", type=Path, help="where to write the private key (PEM)")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing key")
    keygen.set_defaults(func=_keygen)

    issue = sub.add_parser("issue", help="sign a lease token with a local private key")
    issue.add_argument("--key", type=Path, required=True, help="private key (PEM)")
    issue.add_argument("--robot", required=True, help="robot name the lease is for")
    issue.add_argument("--sub", default="local", help="user the lease is for")
    issue.add_argument("--scope", choices=["control", "observe"], default="control")
    issue.add_argument("--minutes", type=float, default=60.0, help="validity from now")
    issue.add_argument("--start-in", type=float, default=0.0, help="seconds until it is valid")
    issue.add_argument("--rid", type=int, default=0, help="reservation id to record")
    issue.add_argument("--issuer", default="raasd-local")
    issue.set_defaults(func=_issue)

    verify = sub.add_parser("verify", help="verify a token with a public key; print its claims")
    verify.add_argument("--pub", type=Path, required=True, help="public key (PEM)")
    verify.add_argument("--robot", required=True)
    verify.add_argument("--scope", choices=["control", "observe"], default=None)
    verify.add_argument("token", help="the token, or - to read it from stdin")
    verify.set_defaults(func=_verify)


def _keygen(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        print(f"{path} exists; pass --force to replace it", file=sys.stderr)
        return 1
    save_private_key(generate_private_key(), path)
    print(f"private key: {path}\npublic key:  {path}.pub")
    return 0


def _issue(args: argparse.Namespace) -> int:
    now = int(time.time())
    nbf = now + int(args.start_in)
    claims = LeaseClaims(
        iss=args.issuer,
        sub=args.sub,
        robot=args.robot,
        rid=args.rid,
        scope=args.scope,
        nbf=nbf,
        exp=nbf + int(args.minutes * 60),
        jti=uuid.uuid4().hex,
        iat=now,
    )
    print(sign_lease(load_private_key(args.key), claims))
    return 0


def _verify(args: argparse.Namespace) -> int:
    token = sys.stdin.read().strip() if args.token == "-" else args.token
    try:
        claims = verify_lease(
            token, load_public_key(args.pub.read_bytes()), robot=args.robot, scope=args.scope
        )
    except LeaseError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(claims.model_dump(), indent=2))
    return 0
