"""What a running service holds: settings, database, signing key, clock, revocation hub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from raas.leases.keys import public_key_pem
from raas.service.db import Database
from raas.service.models import utcnow
from raas.service.revocations import RevocationHub
from raas.service.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    db: Database
    signing_key: Ed25519PrivateKey
    clock: Callable[[], datetime] = utcnow
    hub: RevocationHub = field(default_factory=RevocationHub)

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.signing_key)
