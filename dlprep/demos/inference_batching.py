"""Inference batching: throughput rises with the batch size, and so does the latency of each batch.

What it shows, measured on an MLP in eval mode under torch.inference_mode():
- At batch 1 a forward pass is dominated by fixed per-call costs (Python and operator
  dispatch, kernel launches on a GPU, reading every weight from memory for a single row):
  4x the batch costs far less than 4x the time.
- So throughput (samples per second) grows many-fold with the batch, until the hardware is
  saturated and time grows linearly with the batch (throughput plateaus).
- But a request has to wait for its whole batch: the latency of one batch only grows with
  the batch. A server picks the batch size (and how long to wait to fill a batch: "dynamic
  batching", as in NVIDIA Triton's max_queue_delay) from a latency budget, e.g. the p99 SLO.
- Batching does not change the answer: each row of a batched output equals the output for
  that input alone, to float round-off (in eval mode: BatchNorm uses its running statistics,
  dropout is off).

How it is timed: warm-up first, then the best of several repeats (the minimum is the least
noisy estimate on a shared machine); on CUDA, torch.cuda.synchronize() before reading the
clock, because kernels run asynchronously and the clock would otherwise time only the launch.

What really happens: the exact numbers depend on the machine; on a shared CPU they are noisy,
so the claims use wide margins. On the 2-core CPU used to write this demo throughput peaked
near batch 64-256 (~13x batch 1) and fell again at 1024, when the activations no longer fit
in cache: bigger is not always better even for throughput. On a GPU the plateau comes much
later (thousands of cores idle at batch 1), so on CUDA the MLP is made 4096 wide and the
batches go to 4096.

Run: dlprep demo inference-batching
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = False


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    torch.manual_seed(ctx.seed)
    # on a GPU a 256-wide MLP is launch-bound at any batch: make the work big enough to show
    # the GPU saturating too
    width = 4096 if device.type == "cuda" else 256
    model = nn.Sequential(
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
        nn.Linear(width, 10),
    ).to(device).eval()  # fmt: skip
    g = torch.Generator().manual_seed(ctx.seed)
    batches = [1, 4, 16, 64, 256, 1024] + ([4096] if device.type == "cuda" else [])
    top, prev = batches[-1], batches[-2]
    x_all = torch.randn(max(batches), width, generator=g).to(device)  # (1024, D)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def time_batch(b: int) -> float:
        x = x_all[:b]
        reps = ctx.pick(20, 100) if b <= 64 else ctx.pick(5, 20)
        best = float("inf")
        with torch.inference_mode():
            for _ in range(3):  # warm-up
                model(x)
            for _ in range(reps):
                sync()
                t0 = time.perf_counter()
                model(x)
                sync()
                best = min(best, time.perf_counter() - t0)
        return best

    latency = {b: time_batch(b) for b in batches}  # seconds per batch
    throughput = {b: b / latency[b] for b in batches}  # samples per second

    # the same answers, batched or not
    with torch.inference_mode():
        batched = model(x_all[:64])
        single = torch.cat([model(x_all[i : i + 1]) for i in range(64)])
    max_diff = (batched - single).abs().max().item()

    rows = [[b, f"{latency[b] * 1e3:.3f}", f"{throughput[b]:,.0f}",
             f"{latency[b] / latency[1]:.1f}x"] for b in batches]  # fmt: skip
    result = DemoResult(
        metrics={
            "latency_ms": {str(b): latency[b] * 1e3 for b in batches},
            "throughput_per_s": {str(b): throughput[b] for b in batches},
            "max_diff_batched_vs_single": max_diff,
        },
        tables=[
            Table(
                "MLP inference, best of several runs",
                ["batch", "latency (ms)", "throughput (samples/s)", "latency vs batch 1"],
                rows,
            )
        ],  # fmt: skip
        curves=[
            Curve(
                "Throughput (samples/s)",
                f"batch 1 ... {top}",
                {"throughput": [throughput[b] for b in batches]},
                log_y=True,
            ),
            Curve(
                "Latency per batch (ms)",
                f"batch 1 ... {top}",
                {"latency": [latency[b] * 1e3 for b in batches]},
                log_y=True,
            ),
        ],  # fmt: skip
    )
    result.claim(
        "At small batches the fixed per-call cost dominates: 4x the batch (1 -> 4) costs less "
        "than 2x the time.",
        latency[4] < 2 * latency[1],
        f"{latency[1] * 1e3:.3f} ms -> {latency[4] * 1e3:.3f} ms",
    )
    result.claim(
        "Throughput grows many-fold with the batch: batch 256 serves over 5x more samples per "
        "second than batch 1.",
        throughput[256] > 5 * throughput[1],
        f"{throughput[1]:,.0f} -> {throughput[256]:,.0f} samples/s "
        f"({throughput[256] / throughput[1]:.0f}x)",
    )
    result.claim(
        f"Diminishing returns: once the hardware is busy, 4x the batch ({prev} -> {top}) "
        "gains less throughput than 4x did at the start (1 -> 4).",
        throughput[top] / throughput[prev] < throughput[4] / throughput[1],
        f"1 -> 4: {throughput[4] / throughput[1]:.1f}x, "
        f"{prev} -> {top}: {throughput[top] / throughput[prev]:.1f}x",
    )
    result.claim(
        f"The price is latency: every request waits for its whole batch, and a batch of {top} "
        "takes over 5x as long as a batch of 1.",
        latency[top] > 5 * latency[1],
        f"{latency[1] * 1e3:.3f} ms -> {latency[top] * 1e3:.3f} ms",
    )
    result.claim(
        "Batching does not change the answers: each row of a batched forward equals the "
        "single-input forward (eval mode, float round-off).",
        max_diff < 1e-4,
        f"max |batched - one at a time| = {max_diff:.1e}",
    )
    return result
