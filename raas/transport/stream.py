"""The observation stream: every cycle's step on the PUB socket, camera images every N cycles.

A step is [topic, header, block]: the arrays packed in the packer's preallocated `stream` block
(protocol 2), filled in place; an image is [topic, header, image] (a loose array frame).

A loop Publisher: called after apply, it encodes and sends without blocking (PUB drops for a
subscriber whose queue is full; ZeroMQ does the fan-out in its own C I/O thread, so the cost in
the loop does not grow with the number of subscribers)."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgpack
import numpy as np
from raas_client.wire import PROTOCOL_VERSION, Msg, Topic

from raas.core.observation import Step
from raas.transport.sockets import RobotSockets
from raas.transport.spaces import ObservationPacker


class StreamPublisher:
    def __init__(
        self,
        sockets: RobotSockets,
        packer: ObservationPacker,
        *,
        image_every: int = 1,
        mode: Callable[[], str] | None = None,
    ) -> None:
        self.sockets = sockets
        self.packer = packer
        self.image_every = image_every
        self.mode = mode if mode is not None else (lambda: "run")
        # Views on the packer's block: filling them fills the one frame that is sent.
        self.desired = packer.desired
        self.applied = packer.applied
        self.published = 0
        self._pack = msgpack.Packer().pack
        self._n = 0
        self._block = packer.block

    def publish(self, step: Step) -> None:
        obs = step.obs
        self.packer.fill(obs)
        self.desired[:] = step.desired
        self.applied[:] = step.applied
        header = {
            "v": PROTOCOL_VERSION,
            "t": Msg.OBS,
            "cycle": obs.cycle,
            "episode": obs.episode,
            "mode": self.mode(),
            "fallback": int(step.fallback),
            "safety": step.safety,  # raas.safety.SafetyState value (0 idle .. 5 fault)
            "interventions": step.interventions,  # raas.safety.Stage flags of this cycle
            "trigger_ns": obs.trigger_ns,
            "lateness_ns": step.lateness_ns,
            "decide_ns": step.decide_ns,
            "trigger_to_apply_ns": step.trigger_to_apply_ns,
            "stale": [n for n, r in obs.sources.items() if r.stale],
            "holder": step.lease_holder,
            "mono_ns": time.monotonic_ns(),  # published at (CLOCK_MONOTONIC; docs/protocol.md)
            "b": "stream",  # the block layout (hello's spaces.layouts)
        }
        # Three frames whatever the number of arrays; the block is copied into the zmq message.
        self.sockets.publish3(Topic.STEP, self._pack(header), self._block)
        self.published += 1
        self._n += 1
        if self.image_every and self._n % self.image_every == 0:
            self._images(step)

    def _images(self, step: Step) -> None:
        obs = step.obs
        for name, reading in obs.sources.items():
            if not name.startswith("cameras.") or reading.stale:
                continue
            frame = obs.camera(name.removeprefix("cameras."))
            if frame is None or frame.image.size == 0:
                continue
            img = frame.image
            header = {
                "v": PROTOCOL_VERSION,
                "t": Msg.OBS,
                "cycle": obs.cycle,
                "camera": frame.camera,
                "capture_ns": frame.capture_ns,
                "triggered": frame.triggered,
                "device_ns": frame.device_ns,
                "a": [["image", img.dtype.str[1:], list(img.shape)]],
            }
            # One copy into the zmq message: the shared-memory ring slot may be reused later.
            self.sockets.publish(Topic.IMAGE, [self._pack(header), np.ascontiguousarray(img)])
