"""The stream's `image` messages say whether the frame was triggered (a webcam's is not)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zmq
from raas_client.wire import Topic, decode
from raas_drivers.cameras import CameraFrame
from raas_drivers.hand.shape import HandShape
from raas_drivers.mirror.driver import MirrorHand

from raas.core.observation import Observation, SourceReading, Step
from raas.transport.config import TransportConfig
from raas.transport.sockets import RobotSockets
from raas.transport.spaces import ObservationPacker
from raas.transport.stream import StreamPublisher


def test_image_messages_carry_triggered(tmp_path: Path) -> None:
    cfg = TransportConfig(
        control_endpoint=f"ipc://{tmp_path}/c.sock", stream_endpoint=f"ipc://{tmp_path}/s.sock"
    )
    sockets = RobotSockets(cfg, zmq.Context())
    sub = sockets.ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, Topic.IMAGE)
    sub.connect(sockets.stream_endpoint)
    hand = MirrorHand("hand", HandShape.shadow(), period_ns=80_000_000)
    pub = StreamPublisher(sockets, ObservationPacker(hand, ("m0",)), image_every=1)
    obs = Observation(cycle=5)
    for name, triggered in (("left", True), ("top", False)):
        reading = SourceReading(name=f"cameras.{name}", deadline_ns=0, required=False)
        reading.stale = False
        reading.sample = CameraFrame(
            cycle=5,
            capture_ns=123,
            camera=name,
            image=np.full((4, 6, 3), 7, np.uint8),
            triggered=triggered,
        )
        obs.sources[reading.name] = reading
    step = Step(obs=obs, desired=np.zeros(20), applied=np.zeros(20))
    got: dict[str, bool] = {}
    try:
        for _ in range(200):  # PUB/SUB: messages before the subscription lands are dropped
            pub.publish(step)
            if sub.poll(20):
                while sub.poll(0):
                    msg = decode(sub.recv_multipart()[1:])
                    got[msg.header["camera"]] = msg.header["triggered"]
            if len(got) == 2:
                break
    finally:
        sub.close()
        sockets.close()
    assert got == {"left": True, "top": False}
