"""The emulated board's end of a serial link: pty, frame decoder, fault injection and pacing.

`BoardPort` knows bytes and frames, not what they mean: the firmware (firmware.py) hands it
messages to send and takes the frames it received. Everything sent goes through the fault
injector (faults.py) and, when `baud` is set, leaves no faster than the line would carry it
(10 bits per byte): `flush(now_ns)` writes what the budget allows and `next_flush_ns()` says
when the rest may go, so the rig's event loop can wait for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from raas_firmware_bridge.emulator.config import LinkConfig
from raas_firmware_bridge.emulator.faults import ByteFaults
from raas_firmware_bridge.emulator.pty import VirtualPort
from raas_firmware_bridge.framing import Frame, FrameDecoder

BITS_PER_BYTE = 10  # start + 8 data + stop


class BoardPort:
    def __init__(
        self,
        name: str,
        link_path: str | Path,
        cfg: LinkConfig,
        rng: np.random.Generator,
        *,
        faulty: bool,
    ) -> None:
        self.name = name
        self.port = VirtualPort(link_path)
        self.decoder = FrameDecoder()
        tx_rng, rx_rng = rng.spawn(2)
        inactive = LinkConfig()
        self.tx_faults = ByteFaults(cfg if faulty else inactive, tx_rng)
        self.rx_faults = ByteFaults(cfg if faulty and cfg.corrupt_rx else inactive, rx_rng)
        self.byte_ns = (BITS_PER_BYTE * 1_000_000_000 // cfg.baud) if cfg.baud > 0 else 0
        self._out = bytearray()
        self._line_free_ns = 0  # paced: when the line has sent everything written so far
        self.seq = 0
        self.frames_sent = 0
        self.bytes_dropped_full = 0  # bytes the host did not read fast enough (tty buffer full)

    @property
    def link_path(self) -> Path:
        return self.port.link_path

    def fileno(self) -> int:
        return self.port.fileno()

    def next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        return s

    # ------------------------------------------------------------------ receive
    def receive(self) -> list[Frame]:
        """The good frames that arrived (bad ones are counted by the decoder and dropped)."""
        data = self.port.read()
        if not data:
            return []
        if self.rx_faults.active:
            data = self.rx_faults.apply(data)
        return self.decoder.feed(data)

    # ------------------------------------------------------------------ send
    def send_frame(self, frame: bytes, now_ns: int) -> None:
        self.frames_sent += 1
        self._out += self.tx_faults.apply(frame)
        self.flush(now_ns)

    def flush(self, now_ns: int) -> None:
        if not self._out:
            return
        if not self.port.plugged:
            self._out.clear()
            return
        if self.byte_ns:
            self._line_free_ns = max(self._line_free_ns, now_ns - self.byte_ns)  # the line was idle
            budget = max(0, (now_ns - self._line_free_ns) // self.byte_ns)
            if budget == 0:
                return
            chunk = bytes(self._out[:budget])
        else:
            chunk = bytes(self._out)
        n = self.port.write(chunk)
        if n == 0 and len(chunk) > 0 and not self.byte_ns:
            # the host is not reading: a UART would overwrite, not queue without bound
            self.bytes_dropped_full += len(self._out)
            self._out.clear()
            return
        del self._out[:n]
        if self.byte_ns:
            self._line_free_ns += n * self.byte_ns

    def next_flush_ns(self) -> int | None:
        """When more queued bytes may go (paced lines only); None when nothing waits."""
        if not self._out:
            return None
        return self._line_free_ns + self.byte_ns if self.byte_ns else 0

    # ------------------------------------------------------------------ cable
    def unplug(self) -> None:
        self._out.clear()
        self.decoder.reset()
        self.port.unplug()

    def plug(self) -> None:
        self.port.plug()

    def close(self) -> None:
        self.port.close()

    def counters(self) -> dict[str, int]:
        out = {f"rx_{k}": v for k, v in self.decoder.stats().items()}
        out.update({f"tx_{k}": v for k, v in self.tx_faults.counters().items()})
        out.update({f"rxf_{k}": v for k, v in self.rx_faults.counters().items()})
        out["frames_sent"] = self.frames_sent
        return out
