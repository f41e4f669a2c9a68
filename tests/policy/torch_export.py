"""A dense + LSTM policy exported with torch.onnx.export, as a researcher exports one (torch is a
test-only dependency: the example bundles are built with onnx.helper, raas/policy/examples.py)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """torch.onnx.export reports its progress on stdout and warns freely; keep ours clean."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


class LstmPolicy(torch.nn.Module):
    """normalised obs -> dense + ReLU -> one LSTM step -> head; the LSTM state is explicit."""

    def __init__(
        self, n_in: int, dense: int, hidden: int, n_out: int, logits_shape: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.logits_shape = logits_shape
        self.dense = torch.nn.Linear(n_in, dense)
        self.lstm = torch.nn.LSTM(dense, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_out)

    def forward(self, obs: Any, h: Any, c: Any) -> tuple[Any, Any, Any]:
        x = torch.relu(self.dense(obs)).unsqueeze(1)
        y, (h1, c1) = self.lstm(x, (h, c))
        return self.head(y[:, 0]).reshape(-1, *self.logits_shape), h1, c1


def export_lstm(
    path: Path,
    *,
    n_in: int,
    dense: int,
    hidden: int,
    n_out: int,
    logits_shape: tuple[int, ...],
    seed: int = 0,
    dynamic_batch: bool = False,
    external_data: bool = False,
) -> None:
    """torch.onnx.export of a dense + LSTM policy with inputs obs, h, c and outputs action,
    h_out, c_out (shapes (B, n_in), (1, B, hidden) x2)."""
    torch.manual_seed(seed)
    model = LstmPolicy(n_in, dense, hidden, n_out, logits_shape).eval()
    args = (torch.zeros(1, n_in), torch.zeros(1, 1, hidden), torch.zeros(1, 1, hidden))
    kwargs: dict[str, Any] = {}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"obs": {0: "batch"}, "h": {1: "batch"}, "c": {1: "batch"}}
    with _quiet_export():
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=["obs", "h", "c"],
            output_names=["action", "h_out", "c_out"],
            external_data=external_data,
            verbose=False,
            **kwargs,
        )
