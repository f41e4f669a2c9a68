"""A board's serial port on a pseudo-terminal, as the emulator sees it.

The emulator owns the master side; the host opens the slave with pyserial, by a stable path: a
symlink (like udev's /dev/serial/by-id/...) that always points at the current /dev/pts/N.
The emulator keeps a slave fd open itself, so reads on the master never fail with EIO while the
host is between opens, and it sets the line to raw mode before anybody can open it (no echo, no
line discipline: every byte passes unchanged).

`unplug()` closes the master: the host's next read sees a hang-up and its writes fail with EIO,
which is what a USB-serial adapter pulled from its socket looks like. `plug()` makes a fresh pty
and points the symlink at it, so a host that reconnects (explicitly) finds the board again.
"""

from __future__ import annotations

import contextlib
import os
import tty
from pathlib import Path


class VirtualPort:
    """One board's pty. `fileno()` is the master (non-blocking), `link_path` what the host opens."""

    def __init__(self, link_path: str | Path) -> None:
        self.link_path = Path(link_path)
        self.master = -1
        self._slave = -1
        self.tty_path = ""
        self.plug()

    @property
    def plugged(self) -> bool:
        return self.master >= 0

    def plug(self) -> None:
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self.master, self._slave = master, slave
        self.tty_path = os.ttyname(slave)
        tmp = self.link_path.with_name(self.link_path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.tty_path)
        tmp.replace(self.link_path)  # atomic: the path never points nowhere while plugged

    def unplug(self) -> None:
        """The cable is pulled: the host sees a hang-up, the path disappears."""
        with contextlib.suppress(FileNotFoundError):
            self.link_path.unlink()
        for fd in (self._slave, self.master):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self._slave = -1
        self.tty_path = ""

    def fileno(self) -> int:
        return self.master

    def read(self, n: int = 65536) -> bytes:
        """What the host sent (b"" when nothing is waiting or the port is unplugged)."""
        if not self.plugged:
            return b""
        try:
            return os.read(self.master, n)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:  # EIO: no slave open at the moment; nothing to read
            return b""

    def write(self, data: bytes) -> int:
        """Send to the host; returns the bytes taken (a full tty buffer takes fewer)."""
        if not self.plugged or not data:
            return 0
        try:
            return os.write(self.master, data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return 0

    def close(self) -> None:
        self.unplug()
