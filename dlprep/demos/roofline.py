"""Roofline: achieved FLOP/s vs arithmetic intensity, from bandwidth-bound ops to big matmuls.

What it shows, measured on this device: every op needs FLOPs and moves bytes. Its arithmetic
intensity I = FLOPs / bytes (counted here as the minimum traffic: each operand read once, the
output written once) decides which resource limits it. The roofline model (Williams, Waterman
and Patterson 2009) says the attainable rate is min(P, B * I): P the peak compute (FLOP/s), B
the memory bandwidth (bytes/s). Below the ridge point I* = P / B an op is bandwidth-bound: its
time is bytes / B whatever its FLOPs; above it, compute-bound.

- Element-wise ops (I = 1/12 for a float32 add), reductions (1/4) and matrix-vector products
  (1/2) sit far below the ridge: the same add in float64 (the same FLOPs, twice the bytes) takes
  about twice as long, and they reach a small fraction of the compute roof.
- A square n x n matmul does 2 n^3 FLOPs on 3 n^2 numbers: I = n / 6 grows with n, because each
  number is reused n times. Its achieved FLOP/s grows with the intensity and then flattens at
  the compute roof.
- The roof itself is estimated from the measurements: B = the best bytes/s of the
  low-intensity ops, P = the best FLOP/s of all.

Why accelerators are built around dense matmul: a matmul is the one common op whose intensity
grows with size, so it alone can use far more arithmetic than memory can feed. A TPU's
systolic array (Jouppi et al. 2017: 256 x 256 multiply-accumulate cells) passes each operand
from cell to cell, reusing it 256 times per fetch; GPU tensor cores raise P several-fold for
16-bit matmuls. Neither helps a bandwidth-bound op: fusing those (see operator-fusion) or
batching them into matmuls is what helps. On CUDA the demo also measures a bf16 matmul (tensor
cores) to show the higher roof.

What really happens on a CPU: the demo runs on one thread there (restored afterwards), because
on a shared machine threads fight for cores and the timings turn to noise. Small matmuls fit in
the caches, so even n = 64 sits above the ridge and runs near the compute roof; a large matmul
on a CPU is often a bit slower than a cache-sized one. The measured bandwidth counts only the
minimum traffic: a CPU write usually reads the cache line first, so ops that write look slower.
The CUDA thresholds (sizes far beyond a GPU's L2, a bf16 roof several times the float32 one)
follow the published H100/H200 figures; the demo was written and checked on a CPU.

Run: dlprep demo roofline
"""

from __future__ import annotations

import time

import torch

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = False


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    cuda = device.type == "cuda"
    threads = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(1)
    try:
        return _measure(ctx, device, cuda)
    finally:
        torch.set_num_threads(threads)


def _measure(ctx: DemoContext, device: torch.device, cuda: bool) -> DemoResult:
    g = torch.Generator().manual_seed(ctx.seed)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def best_time(reps, fn, *args, **kwargs):
        fn(*args, **kwargs)  # warm-up
        best = float("inf")
        for _ in range(reps):
            sync()
            t0 = time.perf_counter()
            fn(*args, **kwargs)
            sync()
            best = min(best, time.perf_counter() - t0)
        return best

    reps = ctx.pick(5, 15)
    # sizes well beyond the last-level cache (32 MiB on a server CPU, ~50 MiB L2 on a GPU)
    n_el = 2**27 if cuda else 2**24
    n_mv = 16384 if cuda else 4096
    mm_sizes = [256, 512, 1024, 2048, 4096, 8192] if cuda else [64, 128, 256, 512, 1024]
    rows = []  # name, flops, bytes, seconds

    def measure(name, flops, nbytes, r, fn, *args, **kwargs):
        t = best_time(r, fn, *args, **kwargs)
        rows.append({"op": name, "flops": flops, "bytes": nbytes, "s": t})
        return t

    with torch.inference_mode():
        # ---- low intensity: element-wise, reduction, matrix-vector ---------------------------
        t_add = {}
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(n_el, generator=g, dtype=dtype).to(device)  # (N,)
            y = torch.randn(n_el, generator=g, dtype=dtype).to(device)
            z = torch.empty_like(x)  # preallocated: no allocation or page faults in the timing
            es = x.element_size()  # bytes per element
            bits = 8 * es
            # add: 1 FLOP per element; reads x and y, writes z
            t_add[bits] = measure(
                f"add x + y (float{bits})", n_el, 3 * es * n_el, reps, torch.add, x, y, out=z
            )
            if dtype == torch.float32:
                # scale: 1 FLOP per element; reads x, writes z
                measure("scale 2 * x", n_el, 2 * es * n_el, reps, torch.mul, x, 2.0, out=z)
                # reduction: 1 FLOP per element; reads x only
                measure("sum(x)", n_el, es * n_el, reps, torch.sum, x)
        a = torch.randn(n_mv, n_mv, generator=g).to(device)  # (n, n)
        v = torch.randn(n_mv, generator=g).to(device)  # (n,)
        # 2 FLOPs (multiply, add) per matrix element, each read once: 1/2 FLOP/byte
        measure(f"matvec {n_mv}x{n_mv}", 2 * n_mv**2, 4 * (n_mv**2 + 2 * n_mv), reps,
                torch.mv, a, v)  # fmt: skip
        n_low = len(rows)
        del x, y, z, a, v

        # ---- matmul of growing size: 2 n^3 FLOPs on 3 n^2 numbers, intensity n / 6 ----------
        for n in mm_sizes:
            a = torch.randn(n, n, generator=g).to(device)  # (n, n)
            b = torch.randn(n, n, generator=g).to(device)
            c = torch.empty(n, n, device=device)
            r = reps if n <= 1024 else max(3, reps // 2)
            measure(f"matmul {n}x{n}", 2 * n**3, 12 * n**2, r, torch.mm, a, b, out=c)
        t_bf16 = None
        if cuda:  # tensor cores: a 16-bit matmul has a much higher roof
            a16, b16, c16 = a.bfloat16(), b.bfloat16(), c.bfloat16()
            t_bf16 = best_time(max(3, reps // 2), torch.mm, a16, b16, out=c16)

    for r in rows:
        r["I"] = r["flops"] / r["bytes"]
        r["flops_s"] = r["flops"] / r["s"]
        r["bytes_s"] = r["bytes"] / r["s"]
    low, mms = rows[:n_low], rows[n_low:]
    bw = max(r["bytes_s"] for r in low)  # the bandwidth roof, B
    peak = max(r["flops_s"] for r in rows)  # the compute roof, P
    ridge = peak / bw

    def attainable(i):
        return min(peak, bw * i)

    result = DemoResult()
    result.tables.append(
        Table(
            f"Measured on {device.type} (best of {reps}); roofs: "
            f"B = {bw / 1e9:.1f} GB/s, P = {peak / 1e9:.1f} GFLOP/s, ridge I* = {ridge:.1f} "
            "FLOP/byte",
            [
                "op",
                "FLOP/byte",
                "time (ms)",
                "GFLOP/s",
                "GB/s",
                "% of roofline",
                "bound by",
            ],
            [
                [
                    r["op"],
                    f"{r['I']:.3g}",
                    f"{r['s'] * 1e3:.3f}",
                    f"{r['flops_s'] / 1e9:.2f}",
                    f"{r['bytes_s'] / 1e9:.1f}",
                    f"{100 * r['flops_s'] / attainable(r['I']):.0f}%",
                    "bandwidth" if r["I"] < ridge else "compute",
                ]
                for r in rows
            ],
        )
    )
    result.curves.append(
        Curve(
            "Achieved GFLOP/s, ops sorted by intensity",
            "lowest ... highest FLOP/byte",
            {"GFLOP/s": [r["flops_s"] / 1e9 for r in sorted(rows, key=lambda r: r["I"])]},
            log_y=True,
        )
    )
    result.metrics = {
        "bandwidth_roof_GBps": bw / 1e9,
        "compute_roof_GFLOPs": peak / 1e9,
        "ridge_flop_per_byte": ridge,
        "ops": {
            r["op"]: {
                "flop_per_byte": r["I"],
                "ms": r["s"] * 1e3,
                "GFLOPs": r["flops_s"] / 1e9,
                "GBps": r["bytes_s"] / 1e9,
            }
            for r in rows
        },  # fmt: skip
    }
    ratio64 = t_add[64] / t_add[32]
    result.claim(
        "A low-intensity op's time tracks its bytes, not its FLOPs: the same add in float64 "
        "(the same FLOPs, twice the bytes) takes 1.5-4x as long as in float32.",
        1.5 <= ratio64 <= 4.0,
        f"float32 {t_add[32] * 1e3:.2f} ms, float64 {t_add[64] * 1e3:.2f} ms: {ratio64:.2f}x",
    )
    worst_low = max(r["flops_s"] for r in low)
    slowest_bw = min(r["bytes_s"] for r in low)
    result.claim(
        "Element-wise ops, reductions and matrix-vector products (at most 1/2 FLOP/byte) are "
        "bandwidth-bound: they all move at least 1/4 of the best bytes/s, though their "
        "FLOP/byte spans 12x, and none reaches 1/4 of the compute roof.",
        slowest_bw >= bw / 4 and worst_low < peak / 4,
        f"bytes/s {slowest_bw / 1e9:.1f}-{bw / 1e9:.1f} GB/s; best low-intensity "
        f"{worst_low / 1e9:.2f} GFLOP/s vs roof {peak / 1e9:.1f}",
    )
    add32, mv = low[0], low[-1]
    result.claim(
        "Below the ridge the FLOP/s grows with the intensity: the matrix-vector product "
        "(1/2 FLOP/byte) gets at least 2x the FLOP/s of the add (1/12).",
        mv["flops_s"] >= 2 * add32["flops_s"],
        f"add {add32['flops_s'] / 1e9:.2f}, matvec {mv['flops_s'] / 1e9:.2f} GFLOP/s",
    )
    best_mm = max(mms, key=lambda r: r["flops_s"])
    big, prev = mms[-1], mms[-2]
    result.claim(
        "Above it the FLOP/s flattens at the compute roof: the best matmul gets at least 3x "
        "the FLOP/s of every low-intensity op, and doubling n (and the intensity) for the "
        "largest matmul gains less than 1.5x.",
        best_mm["flops_s"] >= 3 * worst_low and big["flops_s"] < 1.5 * prev["flops_s"],
        f"best {best_mm['op']}: {best_mm['flops_s'] / 1e9:.1f} GFLOP/s vs best low-intensity "
        f"{worst_low / 1e9:.2f}; {prev['op']} {prev['flops_s'] / 1e9:.1f} -> {big['op']} "
        f"{big['flops_s'] / 1e9:.1f} GFLOP/s",
    )
    if t_bf16 is not None:
        n = mm_sizes[-1]
        bf = 2 * n**3 / t_bf16
        result.metrics["bf16_matmul_GFLOPs"] = bf / 1e9
        result.claim(
            f"Tensor cores raise the roof: a bf16 {n}x{n} matmul runs at least 3x the "
            "float32 FLOP/s.",
            bf >= 3 * big["flops_s"],
            f"bf16 {bf / 1e12:.1f} TFLOP/s vs float32 {big['flops_s'] / 1e12:.1f} TFLOP/s "
            f"(TF32 for float32 matmuls: {torch.backends.cuda.matmul.allow_tf32})",
        )
    return result
