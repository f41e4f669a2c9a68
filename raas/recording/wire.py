"""Messages between the loop's tap and the recorder process (local ipc sockets only).

cycles socket (PUSH -> PULL), one frame each, the first byte says what it is:
    L + JSON   the record layout (once, before any session)
    S + JSON   start a session: path, metadata, clock and wall time at the start
    C + bytes  one cycle record (raas.recording.layout; its first byte is the tag C)
    E + JSON   an event
    X + JSON   end the session: the tap's counts
    Q          quit
frames socket (PUSH -> PULL), two frames: FRAME_HEADER + camera name, then the raw RGB bytes.
status socket (PUSH from the recorder -> PULL in the loop process): JSON
    {"kind": "ready" | "opened" | "closed" | "error", ...}
"""

from __future__ import annotations

import struct
from typing import Final

LAYOUT: Final = b"L"
START: Final = b"S"
CYCLE: Final = b"C"
EVENT: Final = b"E"
END: Final = b"X"
QUIT: Final = b"Q"

#: session number, cycle, capture_ns, height, width; then the camera name in UTF-8.
FRAME_HEADER: Final = struct.Struct("<qqqii")
