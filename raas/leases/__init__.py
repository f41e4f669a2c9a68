"""Signed, time-bounded robot leases.

A lease is an Ed25519-signed JWT (alg EdDSA) that the reservation service issues for one
reservation and the robot daemon verifies offline with the public key it trusts. This package
is shared by the service and the daemon, so it depends on neither (it never imports
`raas.service`).
"""

from raas.leases.claims import LeaseClaims, LeaseScope
from raas.leases.errors import (
    LeaseError,
    LeaseExpired,
    LeaseMalformed,
    LeaseNotYetValid,
    LeaseRevoked,
    LeaseSignatureInvalid,
    LeaseWrongRobot,
    LeaseWrongScope,
)
from raas.leases.keyring import KeyRing, TrustedKeysFile, key_id
from raas.leases.keys import (
    generate_private_key,
    load_private_key,
    load_public_key,
    public_key_pem,
    save_private_key,
)
from raas.leases.tokens import TrustedKeys, sign_lease, verify_lease

__all__ = [
    "KeyRing",
    "LeaseClaims",
    "LeaseError",
    "LeaseExpired",
    "LeaseMalformed",
    "LeaseNotYetValid",
    "LeaseRevoked",
    "LeaseScope",
    "LeaseSignatureInvalid",
    "LeaseWrongRobot",
    "LeaseWrongScope",
    "TrustedKeys",
    "TrustedKeysFile",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
    "save_private_key",
    "sign_lease",
    "verify_lease",
]
