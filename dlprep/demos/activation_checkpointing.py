"""Activation checkpointing: store segment inputs only, recompute in backward; same gradients.

What it shows: backward needs the activations each layer saved in forward, and for a deep net
those dominate training memory (they grow with depth x batch x width, the weights do not grow
with the batch). `torch.utils.checkpoint.checkpoint(fn, x, use_reentrant=False)` runs `fn`
in forward without saving its intermediate activations, keeps only its input, and runs `fn`'s
forward again during backward to rebuild them just before they are needed (Chen et al. 2016,
"Training Deep Nets with Sublinear Memory Cost", arXiv 1604.06174).

Measured on a stack of L MLP blocks (Linear-GELU-Dropout-Linear-GELU):
- the bytes autograd holds between forward and backward (counted with saved-tensor hooks):
  all L blocks' activations without checkpointing, one input per segment with it;
- the gradients are bit-identical: the recomputation repeats the same operations, and the RNG
  state is saved and restored (preserve_rng_state=True) so dropout draws the same masks. With
  preserve_rng_state=False the recomputed masks differ and the gradients are wrong;
- the cost is one extra forward of every checkpointed block (forward calls counted): a step
  of forward (F) + backward (~2F) becomes ~4F, about +33% compute, measured as wall time too;
- segments of k blocks: the peak is (L/k) stored inputs + one segment's k blocks rebuilt during
  backward, so it is smallest for k near sqrt(L): memory O(sqrt(L)) for one extra forward.

What really happens: the wall-time overhead depends on how big the layers are. With larger
layers (width 512, batch 1024, measured while writing this demo) it came out at ~1.26x, close
to the +33% FLOP count; in quick mode the layers are tiny and the checkpoint's own per-call
work (saving and restoring the RNG state, the hooks) is no longer negligible: 1.5-2.5x on a
busy CPU. Only the direction is claimed. Because recomputation costs compute, frameworks
checkpoint selectively (e.g. only the cheap-to-redo, memory-hungry attention softmax/dropout:
Korthikanti et al. 2022, arXiv 2205.05198). The memory counted here is what autograd saves,
not the allocator's peak (CPU has no allocator statistics); the weights, gradients and
optimiser state are untouched by checkpointing.

Run: dlprep demo activation-checkpointing
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table
from dlprep.demos._memory import SavedActivations

STATISTICAL = False


def make_blocks(n_blocks: int, width: int) -> nn.ModuleList:
    return nn.ModuleList(
        nn.Sequential(
            nn.Linear(width, width), nn.GELU(), nn.Dropout(0.1),
            nn.Linear(width, width), nn.GELU(),
        )
        for _ in range(n_blocks)
    )  # fmt: skip


def forward(blocks, x, segment: int, preserve_rng: bool = True):
    """Run the blocks; segment = 0: no checkpointing, k: checkpoint every k blocks."""
    h = x
    if segment == 0:
        for blk in blocks:
            h = blk(h)
        return h
    for start in range(0, len(blocks), segment):
        part = blocks[start : start + segment]

        def run_part(inp, part=part):
            for blk in part:
                inp = blk(inp)
            return inp

        h = checkpoint(run_part, h, use_reentrant=False, preserve_rng_state=preserve_rng)
    return h


def step(blocks, x, segment, seed, preserve_rng=True, meter=None):
    """One forward + backward; returns the gradients and the bytes held after forward."""
    for p in blocks.parameters():
        p.grad = None
    torch.manual_seed(seed)  # the same dropout masks for every variant
    if meter is None:
        loss = forward(blocks, x, segment, preserve_rng).pow(2).mean()
        held = 0
    else:
        with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
            loss = forward(blocks, x, segment, preserve_rng).pow(2).mean()
        held = meter.live
    loss.backward()
    return [p.grad.clone() for p in blocks.parameters()], held


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    torch.manual_seed(ctx.seed)
    n_blocks, width, batch = 16, ctx.pick(128, 256), ctx.pick(128, 512)
    blocks = make_blocks(n_blocks, width).to(device)
    g = torch.Generator().manual_seed(ctx.seed)
    x = torch.randn(batch, width, generator=g).to(device)  # (B, D)
    params = list(blocks.parameters())
    result = DemoResult()

    # ---- memory held for backward, and gradients, for each segment size --------------------
    ref_grads, held_plain = step(blocks, x, 0, ctx.seed, meter=SavedActivations(params))
    one_block_bytes = held_plain / n_blocks  # (almost: the loss's pow input is counted too)
    k_star = (n_blocks * x.numel() * x.element_size() / one_block_bytes) ** 0.5
    input_bytes = x.numel() * x.element_size()
    rows, peaks, helds, max_diff = [], {}, {}, 0.0
    segments = [1, 2, 4, 8, 16]
    for k in segments:
        grads, held = step(blocks, x, k, ctx.seed, meter=SavedActivations(params))
        max_diff = max(
            max_diff, max((a - b).abs().max().item() for a, b in zip(grads, ref_grads, strict=True))
        )
        # measured: what forward left behind; plus one segment rebuilt during backward, whose
        # size is measured by running that segment without checkpointing
        _, one_segment = step(blocks[:k], x, 0, ctx.seed, meter=SavedActivations(params))
        peaks[k] = held + one_segment
        helds[k] = held
        rows.append([k, n_blocks // k, f"{held / 1e6:.2f}", f"{one_segment / 1e6:.2f}",
                     f"{peaks[k] / 1e6:.2f}"])  # fmt: skip
    rows.append(["none", "-", f"{held_plain / 1e6:.2f}", "0", f"{held_plain / 1e6:.2f}"])
    result.tables.append(
        Table(
            f"Activation memory, {n_blocks} blocks, batch {batch}, width {width} (MB)",
            ["blocks per segment k", "segments", "held after forward", "rebuilt in backward",
             "peak ≈ sum"],
            rows,
        )
    )  # fmt: skip
    best_k = min(peaks, key=peaks.get)

    # ---- the RNG state: without preserving it, dropout masks differ on recomputation -------
    bad_grads, _ = step(blocks, x, 1, ctx.seed, preserve_rng=False)
    grad_scale = max(g.abs().max().item() for g in ref_grads)
    bad_diff = max((a - b).abs().max().item() for a, b in zip(bad_grads, ref_grads, strict=True))
    bad_diff /= grad_scale  # relative to the largest gradient entry

    # ---- compute: forward calls and wall time ----------------------------------------------
    calls = {"n": 0}

    def count(module, inputs, output):
        calls["n"] += 1

    handles = [blk[0].register_forward_hook(count) for blk in blocks]
    step(blocks, x, 0, ctx.seed)
    calls_plain = calls["n"]
    calls["n"] = 0
    step(blocks, x, 1, ctx.seed)
    calls_ckpt = calls["n"]
    for h in handles:
        h.remove()

    def timed(segment):
        best = float("inf")
        for _ in range(ctx.pick(3, 5)):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step(blocks, x, segment, ctx.seed)
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    timed(0)  # warm-up
    t_plain, t_ckpt = timed(0), timed(1)
    overhead = t_ckpt / t_plain

    result.metrics = {
        "blocks": n_blocks,
        "held_bytes_no_checkpoint": held_plain,
        "held_bytes_checkpoint_every_block": helds[1],
        "peak_bytes_by_segment": {str(k): v for k, v in peaks.items()},
        "best_segment": best_k,
        "max_grad_diff": max_diff,
        "grad_diff_without_rng_preservation": bad_diff,
        "forward_calls": [calls_plain, calls_ckpt],
        "step_time_ratio": overhead,
    }
    result.curves.append(
        Curve("Peak activation bytes vs blocks per segment k", "k = 1, 2, 4, 8, 16",
              {"checkpointed": [peaks[k] for k in segments],
               "no checkpoint": [held_plain] * len(segments)})
    )  # fmt: skip

    held_ckpt1 = helds[1]
    result.claim(
        "Checkpointing every block keeps only each block's input between forward and backward: "
        f"held activation memory drops by over 3x ({n_blocks} blocks of 5 saved tensors).",
        held_plain / held_ckpt1 > 3,
        f"{held_plain / 1e6:.2f} MB -> {held_ckpt1 / 1e6:.2f} MB "
        f"({n_blocks} inputs of {input_bytes / 1e6:.2f} MB + the loss's input)",
    )
    result.claim(
        "The gradients are bit-identical to training without checkpointing, dropout included "
        "(the RNG state is restored for the recomputation).",
        max_diff == 0.0,
        f"max |Δgrad| = {max_diff:.1e}",
    )
    result.claim(
        "With preserve_rng_state=False the recomputed dropout masks differ and the gradients "
        "are wrong.",
        bad_diff > 1e-2,
        f"max |Δgrad| / max |grad| = {bad_diff:.1e}",
    )
    result.claim(
        "The price is one extra forward of every checkpointed block: 2x the forward calls.",
        calls_ckpt == 2 * calls_plain,
        f"Linear forward calls: {calls_plain} -> {calls_ckpt}",
    )
    result.claim(
        "So a training step takes longer: FLOPs go from F + 2F to 2F + 2F (+33%), and the "
        "measured step time rises by at least 5%.",
        overhead > 1.05,
        f"step time ratio (best of several) = {overhead:.2f}",
    )
    result.claim(
        "Segments of k blocks trade stored inputs (L/k of them) against one rebuilt segment (k "
        "blocks): the peak is lowest at an intermediate k, near sqrt(L x input / block bytes).",
        best_k not in (segments[0], segments[-1]),
        "peak MB by k: "
        + ", ".join(f"{k}: {v / 1e6:.2f}" for k, v in peaks.items())
        + f"; sqrt(L x input / block bytes) = {k_star:.1f}",
    )
    return result
