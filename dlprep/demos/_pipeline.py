"""Pieces the pipeline demos share: simulated device work, and reading per-rank timings."""

from __future__ import annotations

import time

import torch
from torch import nn


class Work(torch.autograd.Function):
    """Identity that takes a fixed time: `seconds` in forward, twice that in backward (a
    backward pass costs about two forwards: gradients for the inputs and for the weights)."""

    @staticmethod
    def forward(ctx, x, seconds):
        ctx.seconds = seconds
        time.sleep(seconds)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        time.sleep(2 * ctx.seconds)
        return grad, None


class Stage(nn.Module):
    """One rank's layers, followed by its simulated device work."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.seconds_per_sample = 0.0

    def forward(self, x):
        x = self.layers(x)
        if self.seconds_per_sample:  # after the layers: the output always needs a gradient
            x = Work.apply(x, self.seconds_per_sample * x.shape[0])
        return x


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().flatten() for t in tensors])


def on_one_clock(per_rank: list, same_host: bool) -> tuple[float, list]:
    """Put every rank's (start, end, intervals) of a step on one time axis, from the first
    start. On one machine the ranks share its monotonic clock; across machines each rank's
    clock starts when it leaves the barrier before the step (good to the barrier's skew).
    Returns (span of the step, per-rank intervals relative to its start)."""
    origins = (
        [min(s for s, _, _ in per_rank)] * len(per_rank)
        if same_host
        else [s for s, _, _ in per_rank]
    )
    span = max(e - o for (_, e, _), o in zip(per_rank, origins, strict=True))
    intervals = [
        [(k, i, s - o, e - o) for k, i, s, e in ivs]
        for (_, _, ivs), o in zip(per_rank, origins, strict=True)
    ]
    return span, intervals


def timeline(intervals: list, span: float, width: int = 48) -> str:
    """A text Gantt chart: F/B where the rank computed at that moment, '.' where it waited."""
    cells = []
    for c in range(width):
        t = (c + 0.5) * span / width
        cells.append(next((k for k, _, s, e in intervals if s <= t < e), "."))
    return "".join(cells)
