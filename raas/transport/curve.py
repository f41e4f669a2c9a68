"""The server's CurveZMQ keypair: made on first start, reused after; the public key is what
clients pin (`raas ... --server-key`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq

from raas.transport.errors import KeyFileError

PUBLIC_NAME = "server.public"
SECRET_NAME = "server.secret"


@dataclass(frozen=True, slots=True)
class CurveKeys:
    public: bytes  # Z85, 40 bytes
    secret: bytes

    def apply_server(self, sock: zmq.Socket[bytes]) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True


def load_or_create(key_dir: Path) -> CurveKeys:
    """Read `<key_dir>/server.{public,secret}`, creating them (secret mode 0600) if missing."""
    pub, sec = key_dir / PUBLIC_NAME, key_dir / SECRET_NAME
    if not sec.exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        public, secret = zmq.curve_keypair()
        fd = os.open(sec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secret + b"\n")
        pub.write_bytes(public + b"\n")
    try:
        secret = sec.read_bytes().strip()
        public = pub.read_bytes().strip() if pub.exists() else zmq.curve_public(secret)
    except OSError as exc:
        raise KeyFileError(f"cannot read the server key in {key_dir}: {exc}") from exc
    if len(secret) != 40 or len(public) != 40:
        raise KeyFileError(f"{key_dir}: server keys must be 40-character Z85 strings")
    if zmq.curve_public(secret) != public:
        raise KeyFileError(f"{key_dir}: {PUBLIC_NAME} does not belong to {SECRET_NAME}")
    return CurveKeys(public, secret)


def needs_curve(endpoint: str, plain: bool) -> bool:
    """CurveZMQ on every non-local endpoint unless plain was asked for; ipc/inproc are local."""
    return endpoint.startswith("tcp://") and not plain
