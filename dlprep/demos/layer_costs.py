"""Parameters and FLOPs of common layers: the whiteboard formulas checked against what torch builds.

What it shows:

- Parameter counts come from the weight shapes, not the data: Linear(a, b) has a·b + b, a
  Conv2d has C_out·C_in·k² + C_out whatever the image size (weight sharing), while its FLOPs
  grow with the output's height × width.
- PyTorch's recurrent layers keep two bias vectors per gate (b_ih and b_hh), so nn.LSTM has
  4·(h·x + h² + 2h) parameters: the one-bias textbook formula is 4h short. nn.GRU has three
  gate blocks, exactly 3/4 of the LSTM.
- nn.MultiheadAttention has 4E² + 4E parameters (Q, K, V and output projections) whatever
  the number of heads: heads split E, they do not add weights.
- A matrix product (m×k)·(k×n) is 2mkn FLOPs by convention (a multiply-add counts as two;
  torch.utils.flop_counter applies that formula to the shapes of the ops that really run, so
  it counts, it does not time). A Linear layer's backward runs two such products (the input
  gradient and the weight gradient), twice its forward, so a training step is about 3× a
  forward pass; the first layer, whose input needs no gradient, runs only one.
- FLOPs are not time: a tiny matmul reaches only a fraction of the FLOP/s of a large one.
  For a 16³ product the fixed cost of each call (Python, dispatch, on a GPU the kernel
  launch) dominates; for larger but skinny matmuls the limit is memory traffic (arithmetic
  intensity), which this demo does not separate out.

Run: dlprep demo layer-costs
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def gflops_per_second(size: int, repeats: int, device: torch.device) -> float:
    """Best achieved GFLOP/s of a size×size×size matmul (the least disturbed of `repeats`)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):  # warm-up
        a @ b
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    rows = []

    # ---- 1. Linear and Conv2d: parameters from the shapes ------------------------------------
    linear_sizes = [(784, 256), (256, 10), (1024, 4096)]
    linear_ok = True
    for a, b in linear_sizes:
        built = n_params(nn.Linear(a, b))
        formula = a * b + b
        linear_ok &= built == formula
        rows.append([f"Linear({a}, {b})", "a·b + b", f"{formula:,}", f"{built:,}"])

    conv = nn.Conv2d(64, 128, 3, padding=1).to(device)
    conv_formula = 128 * 64 * 3 * 3 + 128
    rows.append(
        ["Conv2d(64, 128, 3)", "C_out·C_in·k² + C_out", f"{conv_formula:,}", f"{n_params(conv):,}"]
    )
    side = ctx.pick(16, 32)
    conv_flops = {}
    for s in (side, 2 * side):
        x = torch.randn(1, 64, s, s, device=device)  # (B, C, H, W)
        with torch.no_grad():
            conv_flops[s] = count_flops(lambda x=x: conv(x))
    flop_growth = conv_flops[2 * side] / conv_flops[side]

    # ---- 2. recurrent layers: PyTorch's two biases -------------------------------------------
    x_size, h = 100, 128
    lstm, gru = n_params(nn.LSTM(x_size, h)), n_params(nn.GRU(x_size, h))
    lstm_pytorch = 4 * (h * x_size + h * h + 2 * h)
    lstm_textbook = 4 * (h * x_size + h * h + h)
    rows.append([f"LSTM({x_size}, {h})", "4·(h·x + h² + 2h)", f"{lstm_pytorch:,}", f"{lstm:,}"])
    rows.append(
        [
            f"GRU({x_size}, {h})",
            "3·(h·x + h² + 2h)",
            f"{3 * (h * x_size + h * h + 2 * h):,}",
            f"{gru:,}",
        ]
    )

    # ---- 3. attention: heads do not add parameters -------------------------------------------
    embed = 256
    by_heads = {heads: n_params(nn.MultiheadAttention(embed, heads)) for heads in (1, 2, 4, 8)}
    attention_formula = 4 * embed * embed + 4 * embed
    for heads, built in by_heads.items():
        rows.append(
            [
                f"MultiheadAttention({embed}, heads={heads})",
                "4E² + 4E",
                f"{attention_formula:,}",
                f"{built:,}",
            ]
        )

    # ---- 4. FLOPs: a matmul, and a Linear's backward vs forward -------------------------------
    m, k, n = 64, 300, 200
    a = torch.randn(m, k, device=device)
    b = torch.randn(k, n, device=device)
    matmul_flops = count_flops(lambda: a @ b)

    layer = nn.Linear(k, n).to(device)
    inputs = torch.randn(m, k, device=device, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        out = layer(inputs)
        forward_flops = counter.get_total_flops()
        out.sum().backward()
    backward_flops = counter.get_total_flops() - forward_flops

    # The first layer's input needs no gradient: its backward computes only the weight gradient.
    first_inputs = torch.randn(m, k, device=device)
    with FlopCounterMode(display=False) as counter:
        out = layer(first_inputs)
        first_forward_flops = counter.get_total_flops()
        out.sum().backward()
    first_backward_flops = counter.get_total_flops() - first_forward_flops

    # ---- 5. FLOPs are not time: achieved FLOP/s, small vs large matmul -----------------------
    repeats = ctx.pick(5, 20)
    small, large = 16, ctx.pick(512, 1024)
    rate_small = gflops_per_second(small, repeats * 20, device)
    rate_large = gflops_per_second(large, repeats, device)

    result = DemoResult(
        metrics={
            "conv_flops_by_side": {str(s): f for s, f in conv_flops.items()},
            "conv_flop_growth_when_side_doubles": flop_growth,
            "lstm_params": lstm,
            "lstm_textbook_one_bias": lstm_textbook,
            "gru_params": gru,
            "attention_params_by_heads": {str(hd): p for hd, p in by_heads.items()},
            "matmul_flops": matmul_flops,
            "linear_forward_flops": forward_flops,
            "linear_backward_flops": backward_flops,
            "first_layer_backward_flops": first_backward_flops,
            "gflops_per_s": {str(small): rate_small, str(large): rate_large},
        },
        tables=[
            Table(
                "Parameters: formula vs the module torch builds",
                ["layer", "formula", "formula gives", "torch has"],
                rows,
            ),
            Table(
                f"Matmul throughput on {ctx.device} (best of several runs)",
                ["size", "FLOPs", "GFLOP/s"],
                [
                    [f"{s}³", f"{2 * s**3:,}", f"{r:.2f}"]
                    for s, r in ((small, rate_small), (large, rate_large))
                ],
            ),
        ],
    )
    result.claim(
        "Linear(a, b) has a·b + b parameters",
        linear_ok,
        ", ".join(f"Linear({a}, {b})" for a, b in linear_sizes),
    )
    result.claim(
        "A Conv2d's parameters do not depend on the image; its FLOPs grow with H×W "
        "(doubling the side quadruples them)",
        n_params(conv) == conv_formula and abs(flop_growth - 4) < 1e-9,
        f"{n_params(conv):,} parameters at any size; FLOPs {conv_flops[side]:,} at {side}² → "
        f"{conv_flops[2 * side]:,} at {2 * side}² (×{flop_growth:g})",
    )
    result.claim(
        "PyTorch's LSTM has 4·(h·x + h² + 2h) parameters (two biases per gate): the one-bias "
        "textbook count is 4h short",
        lstm == lstm_pytorch and lstm - lstm_textbook == 4 * h,
        f"torch {lstm:,}, textbook {lstm_textbook:,}, difference {lstm - lstm_textbook} = 4h",
    )
    result.claim(
        "A GRU has exactly 3/4 of the parameters of the LSTM of the same size",
        4 * gru == 3 * lstm,
        f"GRU {gru:,} vs LSTM {lstm:,}",
    )
    result.claim(
        "MultiheadAttention has 4E² + 4E parameters whatever the number of heads",
        set(by_heads.values()) == {attention_formula},
        ", ".join(f"{hd} heads: {p:,}" for hd, p in by_heads.items()),
    )
    result.claim(
        "torch's FLOP counter counts an (m×k)·(k×n) matmul as 2mkn; a Linear layer's backward "
        "costs twice its forward, or once for a first layer whose input needs no gradient",
        matmul_flops == 2 * m * k * n
        and backward_flops == 2 * forward_flops
        and first_backward_flops == first_forward_flops,
        f"counted {matmul_flops:,} vs 2mkn = {2 * m * k * n:,}; Linear forward "
        f"{forward_flops:,}, backward {backward_flops:,} (first layer: {first_backward_flops:,})",
    )
    result.claim(
        "FLOPs are not time: a tiny matmul achieves far fewer FLOP/s than a large one",
        rate_large > 3 * rate_small,
        f"{small}³: {rate_small:.2f} GFLOP/s, {large}³: {rate_large:.2f} GFLOP/s "
        f"({rate_large / rate_small:.0f}×)",
    )
    return result
