"""What every driver of a board behind the serial firmware link shares (hand, trigger board).

configure() opens the port and shakes hands (HELLO, RESET); shutdown() closes it. A link that
leaves OPEN (port vanished, board fault, board reset, M bad frames in a row) makes every later
call raise DeviceLostError naming the device, until `reset()` is called explicitly: a vanished
or faulted board never comes back by itself. `stats()` gives the link's counters.
"""

from __future__ import annotations

from raas_firmware_bridge.errors import HandshakeError, LinkError, PortUnavailableError
from raas_firmware_bridge.link import DEFAULT_MAX_BAD_FRAMES, LinkState, SerialLink

from raas_drivers.errors import DeviceLostError, DeviceNotReadyError, LifecycleTransitionError
from raas_drivers.lifecycle import LifecycleState

DEFAULT_REQUEST_TIMEOUT_S = 1.0


class SerialDevice:
    """Mixin for a Device whose board is reached through one SerialLink."""

    name: str
    state: LifecycleState
    board_kind: int

    def _init_link(
        self,
        url: str,
        *,
        baudrate: int,
        max_bad_frames: int = DEFAULT_MAX_BAD_FRAMES,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.link = SerialLink(
            url,
            name=self.name,
            baudrate=baudrate,
            max_bad_frames=max_bad_frames,
            request_timeout_s=request_timeout_s,
        )

    def _connect(self) -> None:
        try:
            self.link.connect(self.board_kind)
        except (PortUnavailableError, HandshakeError) as exc:
            raise DeviceNotReadyError(self.name, str(exc)) from exc

    def _on_configure(self) -> None:
        self._connect()

    def _on_shutdown(self) -> None:
        self.link.close()

    def fileno(self) -> int:
        if self.link.state is LinkState.CLOSED:
            raise LifecycleTransitionError(self.name, f"not connected (state {self.state.value})")
        try:
            return self.link.fileno()
        except LinkError as exc:
            raise DeviceLostError(self.name, str(exc)) from exc

    def stats(self) -> dict[str, float]:
        d = self.link.stats.as_dict()
        d["link_open"] = 1.0 if self.link.state is LinkState.OPEN else 0.0
        return d

    def reset(self) -> None:
        """The explicit way back after a fault: reopen the port, HELLO, RESET. Raises
        DeviceNotReadyError when the board is still not there."""
        self._connect()

    def _check(self) -> None:
        try:
            self.link.check()
        except LinkError as exc:
            raise DeviceLostError(self.name, str(exc)) from exc

    @property
    def link_state(self) -> LinkState:
        return self.link.state
