"""Key ids and trusted key sets, for signing-key rotation.

Every lease names the key that signed it in its JWT header (`kid`: the key's RFC 7638 JWK
thumbprint, so signer and verifier derive the same id from the key alone). A verifier holds a
`KeyRing`, the keys it trusts, and picks the one the lease names: after a rotation the service
signs with the new key while the old one stays in the ring until the last lease it signed has
ended. `TrustedKeysFile` is a ring kept in a PEM file (any number of public keys, one after the
other) that is re-read when the file changes, so a daemon learns a new key without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from raas.leases.keys import load_public_key, public_key_pem

_PEM_BLOCK = re.compile(
    r"-----BEGIN PUBLIC KEY-----\s+[A-Za-z0-9+/=\s]+?-----END PUBLIC KEY-----", re.S
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid` of its leases."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(jwk.encode("ascii")).digest())


class KeyRing:
    """An immutable set of trusted public keys, by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys = {key_id(k): k for k in keys}

    @classmethod
    def from_pem(cls, text: str | bytes) -> KeyRing:
        """Every PUBLIC KEY block of a PEM bundle (a file with one key is a ring of one)."""
        data = text.decode("ascii") if isinstance(text, bytes) else text
        blocks = _PEM_BLOCK.findall(data)
        if not blocks:
            raise ValueError("no PEM public key found")
        return cls(load_public_key(block) for block in blocks)

    def get(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    def __iter__(self) -> Iterator[Ed25519PublicKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def pem(self) -> str:
        """The ring as a PEM bundle (what `from_pem` reads back)."""
        return "".join(public_key_pem(k) for k in self._keys.values())


class TrustedKeysFile:
    """A KeyRing read from a PEM file and re-read when the file changes (checked at most every
    `check_every_s`). A file that cannot be read or parsed keeps the ring it replaced, and the
    fault is kept in `error`, so a half-written file never leaves a daemon without keys."""

    def __init__(self, path: Path, *, check_every_s: float = 1.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self.error: str | None = None
        self.reloads = 0
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._ring = KeyRing()
        self.refresh(force=True)
        if self.error is not None:
            raise ValueError(f"{path}: {self.error}")

    def refresh(self, *, force: bool = False) -> KeyRing:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._checked < self.check_every_s:
                return self._ring
            self._checked = now
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
                if stamp != self._stamp:
                    ring = KeyRing.from_pem(self.path.read_bytes())
                    self._ring, self._stamp = ring, stamp
                    self.reloads += 1
                self.error = None
            except (OSError, ValueError) as exc:
                self.error = str(exc)
            return self._ring

    def ring(self) -> KeyRing:
        return self.refresh()
