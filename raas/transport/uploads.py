"""A policy bundle arriving in chunks: in order, size-limited, hashed as it comes."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from raas_client.wire import ErrorCode

from raas.transport.errors import RequestRefusedError

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class Upload:
    def __init__(
        self, directory: Path, name: object, size: object, sha256: object, limit: int
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name) or name.startswith("."):
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, "upload name must be 1-128 of [A-Za-z0-9._-]"
            )
        if not isinstance(size, int) or size < 0:
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, "upload size must be a non-negative integer"
            )
        if size > limit:
            raise RequestRefusedError(
                ErrorCode.TOO_LARGE, f"{size} bytes exceeds the limit of {limit}"
            )
        if not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-f]{64}", sha256)):
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, "sha256 must be 64 lowercase hex digits"
            )
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{sha256[:16]}-{name}"
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.received = 0
        self.complete = False
        self._hash = hashlib.sha256()
        self._fd: int | None = os.open(
            self.path.with_suffix(self.path.suffix + ".part"),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
            0o600,
        )

    def chunk(self, offset: object, data: memoryview | bytes) -> None:
        if self._fd is None:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "upload is not open")
        if offset != self.received:
            raise RequestRefusedError(
                ErrorCode.BAD_REQUEST, f"chunk at {offset!r}, expected {self.received}"
            )
        if self.received + len(data) > self.size:
            raise RequestRefusedError(ErrorCode.TOO_LARGE, "chunk goes past the announced size")
        os.write(self._fd, data)
        self._hash.update(data)
        self.received += len(data)

    def finish(self) -> Path:
        if self._fd is None:
            raise RequestRefusedError(ErrorCode.BAD_REQUEST, "upload is not open")
        os.close(self._fd)
        self._fd = None
        part = self.path.with_suffix(self.path.suffix + ".part")
        if self.received != self.size or self._hash.hexdigest() != self.sha256:
            part.unlink(missing_ok=True)
            raise RequestRefusedError(
                ErrorCode.UPLOAD_FAILED, "size or sha256 does not match; send it again"
            )
        part.replace(self.path)
        self.complete = True
        return self.path

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.path.with_suffix(self.path.suffix + ".part").unlink(missing_ok=True)
