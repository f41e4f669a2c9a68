"""Content-addressed blob store: bundles and job recordings, one file per sha256.

A blob lives at `<root>/sha256/ab/abcdef...` (the first two hex digits as a directory). A write
goes to a temp file in the same directory, is checked against the expected hash and size limit
while it streams in, fsynced, and renamed into place: a reader never sees half a file, and a
refused upload leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from raas.service.errors import BundleHashMismatch, BundleTooLarge

SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Bytes gathered from the request before one write in the thread pool.
FLUSH_BYTES = 1 << 20


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def read_chunks(self, sha256: str, chunk: int = 1 << 20) -> Iterator[bytes]:
        with self.path(sha256).open("rb") as f:
            while block := f.read(chunk):
                yield block

    def writer(self, sha256: str | None, limit: int) -> BlobWriter:
        """A writer for one upload; `sha256` None stores under whatever hash the bytes have."""
        return BlobWriter(self, sha256, limit)

    def put_bytes(self, sha256: str, data: bytes, limit: int) -> bool:
        """Store `data` under `sha256`; True when stored now, False when it was already there."""
        with self.writer(sha256, limit) as w:
            w.write(data)
            return w.commit()


class BlobWriter:
    """Streams one upload into a temp file; `commit()` checks the hash and renames it."""

    def __init__(self, store: BlobStore, sha256: str | None, limit: int) -> None:
        self.store = store
        self.expected = sha256
        if sha256 is not None:
            store.path(sha256)  # refuses a malformed hash before anything is written
        self.sha256 = ""
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()
        tmp_dir = store.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._done = False

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise BundleTooLarge(f"the upload is larger than {self.limit} bytes")
        self._hash.update(data)
        self._file.write(data)

    def commit(self) -> bool:
        """Check the hash and move the file into place; True when it was not stored before."""
        digest = self._hash.hexdigest()
        if self.expected is not None and digest != self.expected:
            raise BundleHashMismatch(
                f"the body's sha256 is {digest}, not {self.expected} (nothing was stored)"
            )
        self.sha256 = digest
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self.store.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        created = not target.exists()
        self._tmp.replace(target)  # same bytes either way: content-addressed
        self._done = True
        return created

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if not self._done:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.abort()


async def receive(chunks: AsyncIterator[bytes], writer: BlobWriter) -> bool:
    """Stream a request body into `writer` and commit it (the temp file goes on any refusal).
    File writes and the fsync run in the thread pool, off the event loop."""
    with writer:
        pending = bytearray()
        async for chunk in chunks:
            pending += chunk
            if len(pending) >= FLUSH_BYTES:
                await run_in_threadpool(writer.write, bytes(pending))
                pending.clear()
        await run_in_threadpool(writer.write, bytes(pending))
        return await run_in_threadpool(writer.commit)
