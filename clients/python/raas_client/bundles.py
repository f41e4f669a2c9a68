"""Policy bundles as bytes: what `RemoteRobot.upload` sends to a robot and what the reservation
service stores under `PUT /bundles/{sha256}` for an evaluation job. A file is sent as it is; a
directory as an uncompressed tar of it, built the same way every time (entries in name order,
no owners, times zeroed), so one directory always has one sha256."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def pack(path: Path) -> bytes:
    """The bytes of a bundle: a file's own bytes, or a directory as a tar (`<name>/...`)."""
    if path.is_dir():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(path, arcname=path.name, filter=_normalised)
        return buf.getvalue()
    return path.read_bytes()


def upload_name(path: Path) -> str:
    """The name a bundle is uploaded under (a directory's tar gets `.tar`)."""
    return path.name + (".tar" if path.is_dir() else "")


def sha256(data: bytes) -> str:
    """The bundle's id: the sha256 hex of its packed bytes."""
    return hashlib.sha256(data).hexdigest()
