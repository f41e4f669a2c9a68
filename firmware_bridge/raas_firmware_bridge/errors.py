"""Errors of the firmware bridge, named by what went wrong.

Every error the pure codec (framing, messages) raises is a `FirmwareBridgeError`; the streaming
`FrameDecoder` raises none of them: it counts and skips. Frame-level errors are `FrameError`s,
payload-level errors are `MessageError`s.
"""

from __future__ import annotations


class FirmwareBridgeError(Exception):
    """Base of every error raised by raas_firmware_bridge."""


# -- frames -------------------------------------------------------------------------------------


class FrameError(FirmwareBridgeError):
    """A frame could not be encoded or decoded."""


class FrameEncodingError(FrameError):
    """The bytes between two delimiters are not valid COBS (a code byte points past the end)."""


class FrameTooShortError(FrameError):
    """Fewer bytes than a header plus a CRC."""


class FrameTooLongError(FrameError):
    """A payload or an encoded frame longer than the protocol allows (MAX_PAYLOAD)."""


class FrameCRCError(FrameError):
    """The CRC-32C over header and payload does not match: the frame was corrupted."""


class FrameLengthError(FrameError):
    """The header's length field disagrees with the number of payload bytes received."""


class FrameFieldError(FrameError):
    """encode_frame was given a type or version outside 0..255."""


# -- messages -----------------------------------------------------------------------------------


class MessageError(FirmwareBridgeError):
    """A payload does not hold the message its type announces, or a message cannot be encoded."""


class UnknownMessageTypeError(MessageError):
    """The frame's type byte names no message of this protocol version."""


class PayloadLengthError(MessageError):
    """The payload has the wrong number of bytes for its message type."""


class VersionMismatchError(MessageError):
    """A frame speaks a protocol version this side does not (only HELLO/HELLO_ACK cross
    versions)."""


class MessageFieldError(MessageError):
    """A field cannot be encoded: wrong shape, not finite, or outside its fixed-point range."""


# -- the link (link.py) -------------------------------------------------------------------------


class LinkError(FirmwareBridgeError):
    """The serial link to a board cannot be used (see the subclasses for why)."""


class PortUnavailableError(LinkError):
    """The port could not be opened (no such device, permission, busy)."""


class HandshakeError(LinkError):
    """The board did not answer HELLO / RESET as the protocol says, or speaks no common version."""


class LinkTimeoutError(LinkError):
    """A request got no answer within the request timeout."""


class LinkFaultedError(LinkError):
    """The link is in the fault state (port vanished, board fault, board reset): it stays there
    until an explicit reset, never resuming by itself."""


class PortVanishedError(LinkFaultedError):
    """The port disappeared under the link (cable pulled, adapter gone, pty closed)."""


class LinkDeadError(LinkFaultedError):
    """M bad frames in a row: the line is too noisy to trust, the link is declared dead."""
