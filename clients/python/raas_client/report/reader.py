"""Read a raas recording, including one whose writer was killed mid-session.

A file cut short (SIGKILL, power loss, full disk) has no footer or summary, so it is read as a
stream from the start: every complete record is returned, and reading stops quietly at the first
incomplete or corrupt one, setting `truncated` and `truncation_reason`. The recorder flushes each
chunk as it closes, so such a file is readable up to its last complete chunk."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.exceptions import McapError
from mcap.records import Channel, Message, Metadata, Schema
from mcap.stream_reader import StreamReader

from raas_client.report.errors import RecordingUnreadable
from raas_client.report.format import MESSAGE_ENCODING, META_LAYOUT

try:  # zstandard raises its own error on a chunk cut in the middle
    from zstandard import ZstdError as _ZstdError
except ImportError:  # pragma: no cover - zstandard ships with mcap's zstd support
    _ZstdError = ValueError  # type: ignore[assignment,misc]

_TRUNCATION_ERRORS = (McapError, struct.error, EOFError, ValueError, zlib.error, _ZstdError)


@dataclass(slots=True)
class RecordedMessage:
    topic: str
    log_time_ns: int
    data: dict[str, Any]
    sequence: int = 0  # raas writes the cycle index (mod 2**32) here


@dataclass
class RecordingFile:
    """One recording. `messages()` streams it; `metadata` fills in as the stream is read (all of
    it after `scan_metadata()` or a complete `messages()` pass)."""

    path: Path
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    truncated: bool = False
    truncation_reason: str = ""
    message_counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        try:
            with self.path.open("rb") as f:
                head = f.read(8)
        except OSError as exc:
            raise RecordingUnreadable(str(self.path), exc.strerror or str(exc)) from None
        if head[:5] != b"\x89MCAP":
            raise RecordingUnreadable(str(self.path), "no MCAP magic at the start")

    def _records(self) -> Iterator[Any]:
        self.truncated = False
        self.truncation_reason = ""
        with self.path.open("rb") as f:
            reader = StreamReader(f, skip_magic=False, validate_crcs=True)
            try:
                yield from reader.records
            except _TRUNCATION_ERRORS as exc:
                self.truncated = True
                self.truncation_reason = (
                    f"{type(exc).__name__}: {exc}" if str(exc) else (type(exc).__name__)
                )

    def messages(
        self, topics: Iterable[str] | None = None, *, prefix: str | None = None
    ) -> Iterator[RecordedMessage]:
        """Every message of the wanted topics (all when None), in file order, decoded."""
        wanted = None if topics is None else set(topics)
        channels: dict[int, str] = {}
        counts: dict[str, int] = {}
        for record in self._records():
            if isinstance(record, Message):
                topic = channels.get(record.channel_id)
                if topic is None:
                    continue
                counts[topic] = counts.get(topic, 0) + 1
                if (wanted is None and prefix is None) or (
                    (wanted is not None and topic in wanted)
                    or (prefix is not None and topic.startswith(prefix))
                ):
                    yield RecordedMessage(
                        topic, record.log_time, json.loads(record.data), record.sequence
                    )
            elif isinstance(record, Channel):
                if record.message_encoding == MESSAGE_ENCODING:
                    channels[record.id] = record.topic
            elif isinstance(record, Metadata):
                self.metadata[record.name] = dict(record.metadata)
            elif isinstance(record, Schema):
                continue
        self.message_counts = counts

    def scan_metadata(self) -> dict[str, dict[str, str]]:
        """Read the whole file once for its metadata records and message counts."""
        for _ in self.messages(topics=()):
            pass
        return self.metadata

    def layout(self) -> dict[str, Any]:
        """Names and sizes the recording was made with (actuators, joints, markers, sources)."""
        if META_LAYOUT not in self.metadata:
            self.scan_metadata()
        raw = self.metadata.get(META_LAYOUT, {})
        return {k: json.loads(v) for k, v in raw.items()}
