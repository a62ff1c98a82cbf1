"""The cost of attention grows with n^2: FLOPs, memory and time measured against sequence length.

What it shows: self-attention over n tokens of width d forms the score matrix Q K^T, an (n, n)
matrix per head, and multiplies the softmax of it by V: 2 n^2 d multiply-adds (Q K^T and P V),
against 12 n d^2 for the dense layers of a Transformer layer (4 d^2 for the Q, K, V, O
projections and 8 d^2 for a feed-forward block of width 4d, per token). So the dense layers
dominate for short sequences and attention takes over at n = 6d (4608 tokens for d = 768),
counted here with PyTorch's own FLOP counter (torch.utils.flop_counter.FlopCounterMode, 2 FLOPs
per multiply-add), not with the formula being checked. Memory: naive attention materialises the
(n, n) scores and probabilities, and autograd keeps the (n, n) probabilities for the backward
pass (both the softmax's and the P V product's backward use them; the scaled scores are not
kept), so as n grows that memory approaches 4x per doubling (measured: the bytes of the distinct
tensors saved for backward, and the largest tensor any op creates). Time: the forward time of
naive attention grows by ~4x per doubling or more once n is large enough that the n^2 work
dominates the overheads (on a CPU the n x n matrix also falls out of cache, and other processes
inflate the large runs; timings are noisy, so the claim only asks for clearly super-linear
growth).

FlashAttention (Dao et al. 2022, arXiv 2205.14135) is EXACT attention, not an approximation:
it processes keys in blocks and keeps a running max and running sum per query ("online
softmax", Milakov & Gimelshein 2018), so the (n, n) matrix is never stored; the backward pass
recomputes the blocks instead of saving them. The FLOPs stay ~4 n^2 d (more, counting the
recomputation); what it saves is memory (O(n) extra instead of O(n^2)) and, on GPUs, the
traffic to HBM, which is why it is faster. The demo implements the blockwise online softmax
in a few lines and checks that it gives the same output as the naive formula while its
largest intermediate is n x block instead of n x n, with the same FLOP count. (Approximate
"efficient" attentions, linear or sparse, are a different thing: they change the result.)

Run: dlprep demo attention-complexity
"""

from __future__ import annotations

import math
import time

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, n, n): the n^2 term
    return torch.softmax(scores, dim=-1) @ v  # (B, n, d)


def blockwise_attention(q, k, v, block: int) -> torch.Tensor:
    """Exact attention over key blocks, with a running max and sum per query (online softmax)."""
    scale = 1 / math.sqrt(q.shape[-1])
    m = torch.full(q.shape[:-1], float("-inf"), device=q.device, dtype=q.dtype)  # (B, n)
    total = torch.zeros_like(m)  # (B, n): running sum of exp(score - m)
    acc = torch.zeros_like(q)  # (B, n, d): un-normalised output
    for start in range(0, k.shape[-2], block):
        s = q @ k[..., start : start + block, :].transpose(-2, -1) * scale  # (B, n, block)
        m_new = torch.maximum(m, s.amax(-1))
        correction = torch.exp(m - m_new)  # rescale what was summed under the old max
        p = torch.exp(s - m_new[..., None])  # (B, n, block)
        total = total * correction + p.sum(-1)
        acc = acc * correction[..., None] + p @ v[..., start : start + block, :]
        m = m_new
    return acc / total[..., None]


class OpStats(TorchFunctionMode):
    """Watches every torch call inside the block: the largest tensor it creates."""

    def __init__(self):
        super().__init__()
        self.largest = 0  # elements

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            self.largest = max(self.largest, out.numel())
        return out


def saved_bytes(fn, *inputs) -> int:
    """Bytes autograd keeps for the backward pass of fn(*inputs), each storage counted once."""
    storages = {}  # two backward nodes may save the same tensor (here the probabilities)

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*inputs)
    return sum(storages.values())


def flops(fn, *inputs) -> int:
    """FLOPs of fn(*inputs) as PyTorch's counter sees them (matmuls: 2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter:
        fn(*inputs)
    return counter.get_total_flops()


def best_time(fn, *inputs, repeats: int) -> float:
    with torch.no_grad():
        fn(*inputs)  # warm-up
        times = []
        for _ in range(repeats):
            if inputs[0].is_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn(*inputs)
            if inputs[0].is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return min(times)  # the least disturbed run: other processes only ever add time


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    d, block = 64, 128
    lengths = ctx.pick([128, 256, 512, 1024], [128, 256, 512, 1024, 2048, 4096])
    rows, stats = [], {}
    for n in lengths:
        q, k, v = (torch.randn(1, n, d, generator=g).to(device) for _ in range(3))  # (1, n, d)
        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
        with torch.no_grad(), OpStats() as naive_mode:
            out = naive_attention(q, k, v)
        with torch.no_grad(), OpStats() as block_mode:
            out_blocks = blockwise_attention(q, k, v, block)
        s = {
            "flops": flops(naive_attention, q, k, v),
            "flops_blockwise": flops(lambda *a: blockwise_attention(*a, block), q, k, v),
            "saved_mib": saved_bytes(naive_attention, qg, kg, vg) / 2**20,
            "largest_naive": naive_mode.largest,
            "largest_blockwise": block_mode.largest,
            "max_diff": (out - out_blocks).abs().max().item(),
            "ms": 1000 * best_time(naive_attention, q, k, v, repeats=ctx.pick(3, 10)),
        }
        stats[n] = s
        rows.append(
            [n, f"{s['flops'] / 1e6:.0f}", f"{s['saved_mib']:.1f}", s["largest_naive"],
             s["largest_blockwise"], f"{s['max_diff']:.1e}", f"{s['ms']:.2f}"]
        )  # fmt: skip

    result = DemoResult()
    result.tables.append(
        Table(
            f"Single-head attention, d = {d} ({ctx.device}); blockwise = online softmax over "
            f"key blocks of {block}",
            [
                "n",
                "MFLOPs",
                "saved for backward (MiB)",
                "largest tensor, naive",
                "largest tensor, blockwise",
                "max |naive - blockwise|",
                "forward ms (best)",
            ],
            rows,
        )  # fmt: skip
    )

    # FLOPs of one Transformer layer's dense parts vs its attention core, per the counter
    d_model = 768
    meta = torch.device("meta")  # shapes only: counting needs no arithmetic
    x = torch.empty(1, 512, d_model, device=meta)  # (1, n, d)
    w_qkvo = torch.empty(d_model, 4 * d_model, device=meta)  # Q, K, V, O stacked
    w_up = torch.empty(d_model, 4 * d_model, device=meta)
    w_down = torch.empty(4 * d_model, d_model, device=meta)
    dense = flops(lambda t: ((t @ w_qkvo), (t @ w_up) @ w_down), x)
    attn = flops(naive_attention, x, x, x)  # one head of width d_model: same FLOPs as h heads
    crossover = 512 * dense / attn  # both scale linearly in n after dividing by n: attn ~ n

    first, last = lengths[0], lengths[-1]
    growth = last / first
    result.metrics = {
        "per_length": {str(n): s for n, s in stats.items()},
        "dense_flops_n512_d768": dense,
        "attention_flops_n512_d768": attn,
        "crossover_length_d768": crossover,
    }
    result.claim(
        "Attention's FLOPs are 4 n^2 d (Q K^T and P V, 2 n^2 d multiply-adds): they grow "
        "n^2-fold, x4 per doubling of n.",
        all(s["flops"] == 4 * n * n * d for n, s in stats.items()),
        ", ".join(f"n={n}: {s['flops']:,}" for n, s in stats.items()),
    )
    mem_ratio = stats[last]["saved_mib"] / stats[lengths[-2]]["saved_mib"]
    result.claim(
        "Naive attention keeps the (n, n) softmax probabilities for the backward pass: the "
        "saved memory approaches 4x per doubling of n as that n^2 term outgrows the O(n d) "
        "inputs (over 3.3x, at most 4x, at the largest n).",
        3.3 < mem_ratio <= 4.0 + 1e-9,
        f"saved for backward: {stats[lengths[-2]]['saved_mib']:.1f} MiB at n = {lengths[-2]}, "
        f"{stats[last]['saved_mib']:.1f} MiB at n = {last} ({mem_ratio:.2f}x)",
    )
    time_ratio = stats[last]["ms"] / stats[first]["ms"]
    result.claim(
        f"Its forward time grows super-linearly: from n = {first} to {last} ({growth:.0f}x "
        f"longer) it takes over {2 * growth:.0f}x the time (n^2 would give {growth**2:.0f}x).",
        time_ratio > 2 * growth,
        f"{stats[first]['ms']:.2f} ms -> {stats[last]['ms']:.2f} ms ({time_ratio:.1f}x)",
    )
    result.claim(
        "Blockwise attention with an online softmax (FlashAttention's algorithm) is exact: the "
        "same output to float32 round-off and the same FLOPs, while its largest intermediate "
        "is n x block instead of n x n.",
        all(
            s["max_diff"] < 1e-5
            and s["largest_blockwise"] <= n * max(block, d)
            and s["largest_naive"] == n * n
            and abs(s["flops_blockwise"] - s["flops"]) <= 0.01 * s["flops"]
            for n, s in stats.items()
        ),  # fmt: skip
        f"max difference {max(s['max_diff'] for s in stats.values()):.1e}; largest tensor at "
        f"n = {last}: {stats[last]['largest_blockwise']:,} vs {stats[last]['largest_naive']:,}",
    )
    result.claim(
        "In a Transformer layer with d = 768 (QKVO projections + a 4d feed-forward block), "
        "attention's n^2 FLOPs overtake the dense layers' at n = 6d = 4608 tokens.",
        abs(crossover - 6 * d_model) < 1,
        f"matmul FLOPs at n = 512: dense {dense:,}, attention {attn:,} -> crossover at "
        f"n = {crossover:.0f}",
    )
    return result
