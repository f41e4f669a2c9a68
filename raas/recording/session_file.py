"""One session's MCAP file, written by the recorder process.

Chunks are zstd-compressed and small (`chunk_kib`, and closed at least every `flush_interval_s`),
and the file is written with plain os.write calls, no user-space buffer: every finished chunk is
in the kernel the moment it is written, so a SIGKILLed recorder leaves a file that is readable up
to its last finished chunk (raas_client.report.reader reads such a file). What a kill can lose is
the open chunk (at most `chunk_kib` of records or `flush_interval_s` of time, whichever comes
first) plus the records still queued between the loop and the recorder.
"""

from __future__ import annotations

import base64
import errno
import json
import os
from pathlib import Path
from typing import Any

from mcap.writer import CompressionType, Writer
from raas_client.report import format as fmt

from raas.recording.layout import RecordDecoder, RecordLayout


class SizeLimitError(OSError):
    """The configured size limit: handled exactly like a full disk (ENOSPC)."""


class LimitedFile:
    """An unbuffered file that refuses (ENOSPC) a write that would pass `max_bytes`.

    Refusing a whole write (never half of one) keeps the file ending on a record boundary."""

    def __init__(self, path: Path, max_bytes: int | None) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        if self.max_bytes is not None and self.written + len(view) > self.max_bytes:
            raise SizeLimitError(
                errno.ENOSPC, f"size limit of {self.max_bytes} bytes reached", str(self.path)
            )
        while view:
            n = os.write(self.fd, view)
            self.written += n
            view = view[n:]
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        """Nothing to do: every write is already in the kernel."""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class SessionFile:
    """Writes the channels, metadata and messages of one session."""

    def __init__(
        self,
        path: Path,
        layout: RecordLayout,
        metadata: dict[str, str],
        *,
        clock_ns0: int,
        wall_ns0: int,
        chunk_bytes: int,
        flush_interval_ns: int,
        max_bytes: int | None,
        camera_names: tuple[str, ...],
        library: str,
    ) -> None:
        self.path = path
        self.decoder = RecordDecoder(layout)
        self.clock_ns0 = clock_ns0
        self.wall_ns0 = wall_ns0
        self.flush_interval_ns = flush_interval_ns
        self.file = LimitedFile(path, max_bytes)
        self.writer = Writer(self.file, chunk_size=chunk_bytes, compression=CompressionType.ZSTD)  # type: ignore[arg-type]
        self.writer.start(profile=fmt.PROFILE, library=library)
        self.channels: dict[str, int] = {}
        for topic, (name, schema) in fmt.SCHEMAS.items():
            sid = self.writer.register_schema(name, fmt.SCHEMA_ENCODING, _dumps(schema))
            self.channels[topic] = self.writer.register_channel(topic, fmt.MESSAGE_ENCODING, sid)
        if camera_names:
            sid = self.writer.register_schema(
                fmt.COMPRESSED_IMAGE_SCHEMA_NAME,
                fmt.SCHEMA_ENCODING,
                _dumps(fmt.COMPRESSED_IMAGE_SCHEMA),
            )
            for cam in camera_names:
                topic = fmt.camera_topic(cam)
                self.channels[topic] = self.writer.register_channel(
                    topic, fmt.MESSAGE_ENCODING, sid
                )
        session = {k: v for k, v in metadata.items() if k != "cell_config"}
        self.writer.add_metadata(fmt.META_SESSION, session)
        config = metadata.get("cell_config")
        if config is not None:
            self.writer.add_metadata(fmt.META_CONFIG, {"cell_config": config})
        self.writer.add_metadata(
            fmt.META_LAYOUT, {k: json.dumps(v) for k, v in layout.to_json().items()}
        )
        self.writer.flush()  # type: ignore[no-untyped-call]
        self.cycles = 0
        self.frames = 0
        self.events = 0
        self.first_cycle = -1
        self.last_cycle = -1
        self.gaps = 0
        self.max_dropped_before = 0
        self._last_log_ns = wall_ns0
        self._pending = False
        self._last_flush_ns = 0

    def log_time(self, clock_ns: int) -> int:
        """Wall-clock ns for Foxglove's timeline: the session's start plus loop-clock time."""
        return max(0, self.wall_ns0 + (clock_ns - self.clock_ns0))

    def write_cycle(self, data: bytes | memoryview) -> None:
        rec = self.decoder.decode(data)
        obs, act, tim = self.decoder.messages(rec)
        cycle = obs["cycle"]
        if self.first_cycle < 0:
            self.first_cycle = cycle
        elif cycle != self.last_cycle + 1:
            self.gaps += 1
        self.last_cycle = cycle
        self.max_dropped_before = max(self.max_dropped_before, tim["dropped_before"])
        t = self.log_time(obs["trigger_ns"])
        self._last_log_ns = t
        seq = cycle & 0xFFFFFFFF
        w, ch = self.writer, self.channels
        w.add_message(ch[fmt.TOPIC_OBSERVATION], t, _dumps(obs), t, seq)
        w.add_message(ch[fmt.TOPIC_ACTION], t, _dumps(act), t, seq)
        w.add_message(ch[fmt.TOPIC_TIMING], t, _dumps(tim), t, seq)
        self.cycles += 1
        self._pending = True

    def write_frame(
        self, camera: str, cycle: int, capture_ns: int, fmt_name: str, data: bytes
    ) -> None:
        topic = fmt.camera_topic(camera)
        ch = self.channels.get(topic)
        if ch is None:
            return
        t = self.log_time(capture_ns)
        msg = {
            "timestamp": {"sec": t // 1_000_000_000, "nsec": t % 1_000_000_000},
            "frame_id": camera,
            "data": base64.b64encode(data).decode(),
            "format": fmt_name,
        }
        self.writer.add_message(ch, t, _dumps(msg), t, cycle & 0xFFFFFFFF)
        self.frames += 1
        self._pending = True

    def write_event(self, kind: str, cycle: int, data: dict[str, Any]) -> None:
        body = {"kind": kind, "cycle": cycle, "data": data}
        t = self._last_log_ns
        self.writer.add_message(
            self.channels[fmt.TOPIC_EVENTS], t, json.dumps(body, default=str).encode(), t, 0
        )
        self.events += 1
        self._pending = True

    def maybe_flush(self, now_ns: int) -> None:
        """Close the open chunk when it is older than the flush interval."""
        if self._pending and now_ns - self._last_flush_ns >= self.flush_interval_ns:
            self.writer.flush()  # type: ignore[no-untyped-call]
            self._pending = False
            self._last_flush_ns = now_ns

    def finish(self, summary: dict[str, str]) -> None:
        """Final metadata and the MCAP summary, then close."""
        try:
            self.writer.add_metadata(fmt.META_RECORDING, summary)
            self.writer.finish()  # type: ignore[no-untyped-call]
        finally:
            self.file.close()

    def abandon(self) -> None:
        """Close without writing more (after a write error): the file keeps what it has."""
        self.file.close()
