"""What a running service holds: settings, database, signing key, clock, revocation hub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from raas.leases.keyring import key_id
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
    #: Wakes job workers waiting in `POST /robots/{id}/jobs/claim?wait=` (raas/service/job_wake.py).
    jobs_hub: RevocationHub = field(default_factory=RevocationHub)
    #: Keys this service signed with before a rotation; their leases still verify until they end.
    retired_keys: list[Ed25519PublicKey] = field(default_factory=list)

    @property
    def public_key_pem(self) -> str:
        return public_key_pem(self.signing_key)

    @property
    def signing_kid(self) -> str:
        return key_id(self.signing_key)

    def service_kids(self) -> set[str]:
        """Ids of every key this service signs or signed with (current and retired)."""
        return {self.signing_kid, *(key_id(k) for k in self.retired_keys)}
