"""A policy bundle as the bytes that leave the researcher's machine, and their id.

    data = pack(Path("my-bundle"))     # a file as is; a directory as a tar of it
    digest = sha256_of(data)           # the content address: `PUT /bundles/{digest}`

The same bytes go to a robot (`RemoteRobot.upload`) and to the reservation service's bundle
store (`raas jobs submit`), so the id the service keeps is the sha256 the robot checks.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path


def pack(path: Path) -> bytes:
    """The bundle's bytes: a file as is, a directory as an (uncompressed) tar whose one top
    folder is the directory's name."""
    if path.is_dir():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(path, arcname=path.name)
        return buf.getvalue()
    return path.read_bytes()


def sha256_of(data: bytes) -> str:
    """The bundle's id: the sha256 hex of its packed bytes."""
    return hashlib.sha256(data).hexdigest()


def upload_name(path: Path) -> str:
    """The name a robot stores the upload under (a directory's tar gets `.tar`)."""
    return path.name + (".tar" if path.is_dir() else "")
