"""Timing code on a device: warm up, repeat and take the median/min, and synchronise on CUDA.

What it shows, measured:

- Warm-up: the first call of a freshly built module pays one-off costs (lazy initialisation,
  first memory allocations, cold caches; on a GPU also the CUDA context, cuBLAS/cuDNN handles
  and autotuning). It is several times slower than the calls that follow, so it must not be
  timed.
- Repeats: single timings scatter (other processes, frequency changes, the scheduler's time
  slices), while the median (or the minimum, the least disturbed run) of many repeats is
  reproducible. torch.utils.benchmark.Timer does warm-up, repeats and synchronisation for you.
- Asynchrony: on CUDA, an op called from Python is queued on a stream and control returns at
  once. A plain time.perf_counter() around model(x) measures the launch (microseconds,
  whatever the size); the GPU work is paid at the next synchronising call (.item(), .cpu(),
  print, torch.cuda.synchronize()). Correct timing synchronises before reading the clock, or
  records CUDA events (start.record(); ...; end.record(); torch.cuda.synchronize();
  start.elapsed_time(end)). On CUDA the demo measures all of this.

What really happens on a CPU: CPU ops are synchronous, the call returns when the work is
done, so there is nothing to synchronise and the plain timer already measures the work (the
demo checks that it grows with the work). The asynchronous-launch claims are made only when
the demo runs on CUDA (dlprep demo device-timing --device cuda). On a shared CPU the demo runs
on one thread (restored afterwards) so that threads do not wait for each other's cores. The
CUDA claims' margins are wide (launch: microseconds; an 8192x8192 float32 matmul: milliseconds);
the demo was written and checked on a CPU.

Run: dlprep demo device-timing
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _measure(ctx, device)
    finally:
        torch.set_num_threads(threads)


def _measure(ctx: DemoContext, device: torch.device) -> DemoResult:
    cuda = device.type == "cuda"
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def timed(fn, *args, synchronise=True):
        """Seconds for one call of fn(*args), read with time.perf_counter()."""
        if synchronise:
            sync()
        t0 = time.perf_counter()
        fn(*args)
        if synchronise:
            sync()
        return time.perf_counter() - t0

    # ---- 1. warm-up: the first call of a fresh module ----------------------------------------
    lstm = nn.LSTM(24, 48, batch_first=True).to(device)  # built now: nothing initialised yet
    x_seq = torch.randn(8, 32, 24, generator=g).to(device)  # (B, T, C)
    with torch.inference_mode():
        calls = [timed(lstm, x_seq) for _ in range(ctx.pick(15, 50))]
    first, rest = calls[0], statistics.median(calls[1:])

    # ---- 2. repeats: single timings scatter, medians of many repeats agree ---------------------
    n_rep = 128 if device.type == "cpu" else 1024
    a = torch.randn(n_rep, n_rep, generator=g).to(device)
    b = torch.randn(n_rep, n_rep, generator=g).to(device)
    reps = ctx.pick(25, 100)
    with torch.inference_mode():
        for _ in range(3):  # warm-up
            timed(torch.mm, a, b)
        rounds = [[timed(torch.mm, a, b) for _ in range(reps)] for _ in range(2)]
    singles = rounds[0] + rounds[1]
    medians = [statistics.median(r) for r in rounds]
    mins = [min(r) for r in rounds]
    med_gap = max(medians) / min(medians)
    min_gap = max(mins) / min(mins)
    scatter = max(singles) / min(singles)
    result.tables.append(
        Table(
            f"{n_rep}x{n_rep} matmul on {device.type}, 2 rounds of {reps} repeats (ms)",
            ["statistic", "round 1", "round 2", "round 2 / round 1"],
            [
                ["min", *(f"{m * 1e3:.4f}" for m in mins), f"{mins[1] / mins[0]:.2f}"],
                [
                    "median",
                    *(f"{m * 1e3:.4f}" for m in medians),
                    f"{medians[1] / medians[0]:.2f}",
                ],
                [
                    "max",
                    *(f"{max(r) * 1e3:.4f}" for r in rounds),
                    f"{max(rounds[1]) / max(rounds[0]):.2f}",
                ],
            ],
        )
    )

    # ---- 3. asynchrony: time the same call without and with synchronisation -----------------
    sizes = [1024, 8192] if cuda else [128, 512]
    rows, plain, synced, item_split = [], {}, {}, {}
    with torch.inference_mode():
        for n in sizes:
            x = torch.randn(n, n, generator=g).to(device)
            y = torch.randn(n, n, generator=g).to(device)
            for _ in range(2):  # warm-up (cuBLAS handle and workspace on CUDA)
                (x @ y).sum().item()
            k = ctx.pick(5, 20)
            # the naive way: no synchronisation around the call
            plain[n] = min(timed(torch.mm, x, y, synchronise=False) for _ in range(k))
            synced[n] = min(timed(torch.mm, x, y) for _ in range(k))
            # where the time goes without synchronisation: the launch, then the .item()
            launch, wait = [], []
            for _ in range(k):
                sync()
                t0 = time.perf_counter()
                out = x @ y
                t1 = time.perf_counter()
                out[0, 0].item()  # needs the result: waits for the GPU
                t2 = time.perf_counter()
                launch.append(t1 - t0)
                wait.append(t2 - t1)
            item_split[n] = (statistics.median(launch), statistics.median(wait))
            rows.append([
                f"{n}x{n} matmul", f"{plain[n] * 1e3:.4f}", f"{synced[n] * 1e3:.4f}",
                f"{item_split[n][0] * 1e3:.4f}", f"{item_split[n][1] * 1e3:.4f}",
            ])  # fmt: skip
        event_ms = None
        if cuda:  # CUDA events: timestamps recorded on the stream itself
            n = sizes[-1]
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            ev = []
            for _ in range(ctx.pick(5, 20)):
                start.record()
                x @ y
                end.record()
                torch.cuda.synchronize()
                ev.append(start.elapsed_time(end))  # milliseconds
            event_ms = min(ev)
    result.tables.append(
        Table(
            "Timing the same call (best of several, ms)",
            ["op", "no sync", "with sync", "launch only", "then .item()"],
            rows,
        )
    )
    small, big = sizes
    result.metrics = {
        "first_call_ms": first * 1e3,
        "later_calls_median_ms": rest * 1e3,
        "repeat_medians_ms": [m * 1e3 for m in medians],
        "repeat_mins_ms": [m * 1e3 for m in mins],
        "single_max_over_min": scatter,
        "no_sync_ms": {str(n): plain[n] * 1e3 for n in sizes},
        "sync_ms": {str(n): synced[n] * 1e3 for n in sizes},
        "cuda_event_ms": event_ms,
    }
    result.claim(
        "Warm up before timing: the first call of a freshly built module (an LSTM) is at least "
        "2x slower than the median of the calls that follow.",
        first >= 2 * rest,
        f"first {first * 1e3:.3f} ms, median of the next {len(calls) - 1}: {rest * 1e3:.3f} ms",
    )
    result.claim(
        f"Repeat and take the median or the minimum: two independent rounds of {reps} repeats "
        "give medians and minima within 20% of each other.",
        med_gap <= 1.2 and min_gap <= 1.2,
        f"medians {medians[0] * 1e3:.4f} / {medians[1] * 1e3:.4f} ms ({med_gap:.2f}x), minima "
        f"{mins[0] * 1e3:.4f} / {mins[1] * 1e3:.4f} ms ({min_gap:.2f}x); single calls ranged "
        f"{scatter:.2f}x",
    )
    ratio_flops = (big / small) ** 3
    if cuda:
        result.claim(
            "On CUDA the call returns before the GPU has finished: without synchronisation the "
            f"timer reads under 1/10 of the real time of the {big}x{big} matmul, and barely "
            f"grows (under 3x) from {small} to {big} although the work grows {ratio_flops:.0f}x.",
            plain[big] < synced[big] / 10 and plain[big] < 3 * plain[small],
            f"no sync {plain[small] * 1e3:.4f} -> {plain[big] * 1e3:.4f} ms; with sync "
            f"{synced[small] * 1e3:.4f} -> {synced[big] * 1e3:.4f} ms",
        )
        launch, wait = item_split[big]
        result.claim(
            "The GPU time is paid at the next synchronising call: the .item() after the "
            "launch waits at least 5x as long as the launch took.",
            wait >= 5 * launch,
            f"launch {launch * 1e3:.4f} ms, .item() {wait * 1e3:.4f} ms",
        )
        result.claim(
            "CUDA events and perf_counter with torch.cuda.synchronize() agree (within 20%) on "
            "a long kernel.",
            abs(event_ms / (synced[big] * 1e3) - 1) <= 0.2,
            f"events {event_ms:.3f} ms, synchronised perf_counter {synced[big] * 1e3:.3f} ms",
        )
    else:
        result.claim(
            "On a CPU the op is synchronous: the timer without any synchronisation already "
            f"measures the work ({small} -> {big}: {ratio_flops:.0f}x the FLOPs, at least 16x "
            "the time).",
            plain[big] >= 16 * plain[small],
            f"no sync {plain[small] * 1e3:.4f} -> {plain[big] * 1e3:.4f} ms",
        )
        result.notes.append(
            "CPU ops return only when their work is done, so the plain and the synchronised "
            "timings agree here. Run with --device cuda to see the asynchronous launch: there "
            "the plain timer reads microseconds whatever the size."
        )
    return result
