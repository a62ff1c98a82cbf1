"""FSDP fully_shard: each rank keeps 1/N of params, grads and Adam state; blocks gathered to run.

What it shows: FSDP2's `fully_shard` is applied to every transformer block and then to the
root. Each parameter becomes a DTensor sharded on dim 0: rank r stores the r-th of N chunks.
The gradients (reduce-scattered, not all-reduced) and Adam's exp_avg/exp_avg_sq live in the
same shards, so the per-rank training state is about 1/N of DDP's, where every rank holds
everything. The price is communication: before a block's forward FSDP all-gathers its
parameters (the registered parameters are swapped for full tensors), frees them after the
forward (`reshard_after_forward=True`), all-gathers them again for backward, then
reduce-scatters the gradients: ZeRO-3, 1.5x DDP's traffic. The maths is unchanged: with each
rank on 1/N of the batch the training losses equal one process on the whole batch, to float
round-off.

What really happens: the shards are per parameter, cut along dim 0 as torch.chunk does, so
they are not exactly 1/N: a (10, 32) head on 4 ranks is split 3+3+3+1 rows, and every rank's
storage is padded to 3 rows (counted below as "held"). The root module (embedding, final norm,
head) is not resharded after forward - FSDP2 keeps it gathered since backward needs it at once
- so the peak of gathered parameters is the root plus about one block, not one block. A
parameter shows up as a full tensor only once its all-gather has been waited on: a prefetched
block's buffer can already be allocated while its parameters still read as shards. The losses
agree to 1e-7, but not every weight does: Adam divides each gradient by its own RMS, so where
a gradient is round-off-sized, the round-off becomes a visible step. The attention key biases
are the extreme case - their true gradient is exactly zero, since softmax ignores a constant
added to all of a query's scores - and drift ~1e-4 between any two ways of summing the batch
(DDP's too), so the demo reports them apart. On CPU the allocator reports no peak, so the demo
counts bytes; on CUDA it also reports torch.cuda.max_memory_allocated per rank for FSDP and
for DDP.

Run: dlprep demo fsdp-sharding --nproc 2
     torchrun --nproc_per_node 2 -m dlprep.demos.fsdp_sharding
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel as DDP

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table
from dlprep.demos._dist import World, entry

DISTRIBUTED = True
STATISTICAL = False


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attention(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):  # (B, T, d)
        B, T, d = x.shape
        qkv = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, d/H)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, d/H)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyTransformer(nn.Module):
    """Sequence classifier: embed -> blocks -> norm -> mean over time -> class logits."""

    def __init__(self, d_in: int, d: int, heads: int, n_blocks: int, n_classes: int):
        super().__init__()
        self.embed = nn.Linear(d_in, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(n_blocks))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_classes)

    def forward(self, x):  # (B, T, d_in) -> (B, n_classes)
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h).mean(dim=1))


def local_numel(t) -> int:
    """Elements this rank stores for a (possibly sharded) tensor."""
    return t.to_local().numel() if isinstance(t, DTensor) else t.numel()


def held_bytes(tensors) -> int:
    """Bytes of the distinct storages behind these tensors (shards, padding, shared buffers)."""
    storages = {}
    for t in tensors:
        local = t.to_local() if isinstance(t, DTensor) else t
        storage = local.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def gathered_numel(module: nn.Module) -> int:
    """Parameter elements currently registered as full tensors (FSDP swaps the DTensor shards
    for plain full tensors while a module is unsharded)."""
    return sum(p.numel() for p in module.parameters() if not isinstance(p, DTensor))


def split_key_biases(named: list[tuple[str, torch.Tensor]], d: int):
    """Flatten weights into (key biases, everything else). A key bias adds q·b_k to every
    score of a query, which softmax ignores: its true gradient is exactly zero."""
    keys, others = [], []
    for name, t in named:
        t = t.detach().flatten()
        if name.endswith("qkv.bias"):  # [q | k | v] biases
            keys.append(t[d : 2 * d])
            others += [t[:d], t[2 * d :]]
        else:
            others.append(t)
    return torch.cat(keys), torch.cat(others)


def training_state(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """What this rank stores: parameter, gradient and Adam-moment elements, and bytes held."""
    params = list(model.parameters())
    grads = [p.grad for p in params if p.grad is not None]
    moments = [opt.state[p][k] for p in params for k in ("exp_avg", "exp_avg_sq")]
    return {
        "param_elems": sum(local_numel(p) for p in params),
        "grad_elems": sum(local_numel(g) for g in grads),
        "adam_elems": sum(local_numel(m) for m in moments),
        "param_bytes": held_bytes(params),
        "grad_bytes": held_bytes(grads),
        "adam_bytes": held_bytes(moments),
    }


def run(ctx: DemoContext, world: World) -> DemoResult:
    device = torch.device(world.device)
    n = world.world_size
    mesh = init_device_mesh(device.type, (n,))  # explicit: the default mesh picks CUDA if present
    cuda = device.type == "cuda"

    torch.manual_seed(ctx.seed)  # the same initial weights on every rank
    n_blocks, d = ctx.pick(4, 6), ctx.pick(32, 64)
    base = TinyTransformer(d_in=8, d=d, heads=4, n_blocks=n_blocks, n_classes=10)
    total = sum(p.numel() for p in base.parameters())
    block_sizes = [sum(p.numel() for p in b.parameters()) for b in base.blocks]
    root_size = total - sum(block_sizes)  # embed + final norm + head: the root's own parameters

    per_rank, seq = ctx.pick(8, 32), 16
    batch = per_rank * n
    g = torch.Generator().manual_seed(ctx.seed + 1)
    x = torch.randn(batch, seq, 8, generator=g)  # (B, T, 8): the same data on every rank
    y = (x.mean(dim=1) @ torch.randn(8, 10, generator=g)).argmax(dim=1)  # (B,) learnable labels
    x, y = x.to(device), y.to(device)
    shard = slice(world.rank * per_rank, (world.rank + 1) * per_rank)  # this rank's samples
    steps, lr = ctx.pick(5, 20), 3e-3

    # ---- reference: one process, the whole batch --------------------------------------------
    single = copy.deepcopy(base).to(device)
    opt_single = torch.optim.Adam(single.parameters(), lr=lr)
    losses_single = []
    for step in range(steps):
        loss = F.cross_entropy(single(x), y)
        loss.backward()
        if step == 0:  # how big is a gradient that should be exactly zero?
            key_grad, other_grad = (
                t.abs().max().item()
                for t in split_key_biases([(k, p.grad) for k, p in single.named_parameters()], d)
            )
        opt_single.step()
        opt_single.zero_grad()
        losses_single.append(loss.item())

    # ---- FSDP2: shard every block, then the root ----------------------------------------------
    start_bytes = torch.cuda.memory_allocated(device) if cuda else 0
    model = copy.deepcopy(base).to(device)  # (a real job would build it on the meta device)
    for block in model.blocks:
        fully_shard(block, mesh=mesh)  # each block: one all-gather / reduce-scatter group
    fully_shard(model, mesh=mesh)  # the root: what is left (embed, ln, head)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if cuda:  # the peak while training, above what was allocated before the model existed
        torch.cuda.reset_peak_memory_stats(device)

    # Watch block 1 while it runs: a hook inside it (on its first layer) sees its parameters
    # during forward, and a hook on that layer's output gradient sees them during backward.
    watched = model.blocks[1]
    seen = {"forward": [], "backward": [], "peak_gathered": 0}

    def sample(phase: str | None = None) -> None:
        if phase:
            seen[phase].append(gathered_numel(watched))
        seen["peak_gathered"] = max(seen["peak_gathered"], gathered_numel(model))

    def inside_forward(module, inputs, output):
        sample("forward")
        output.register_hook(lambda grad: sample("backward"))

    def anywhere(module, inputs, output):  # the whole model's gathered parameters, fwd + bwd
        sample()
        output.register_hook(lambda grad: sample())

    hooks = [watched.ln1.register_forward_hook(inside_forward)]
    for block in model.blocks:
        for layer in (block.qkv, block.fc2):
            hooks.append(layer.register_forward_hook(anywhere))

    losses_fsdp = []
    for step in range(steps):
        out = model(x[shard])
        if step == 0:  # between forward and backward: what stayed gathered?
            after_forward = {
                "blocks": sum(gathered_numel(b) for b in model.blocks),
                "root": gathered_numel(model) - sum(gathered_numel(b) for b in model.blocks),
            }
        loss = F.cross_entropy(out, y[shard])
        loss.backward()  # FSDP reduce-scatters (and averages) the gradients into the shards
        if step == 0:
            after_backward = gathered_numel(model)
        opt.step()
        if step == steps - 1:
            fsdp_state = training_state(model, opt)  # grads still present: the peak state
        opt.zero_grad()
        full = loss.detach().clone()
        dist.all_reduce(full)  # mean of the equal-sized shards' losses = the full-batch loss
        losses_fsdp.append(full.item() / n)
    for h in hooks:
        h.remove()
    fsdp_peak = torch.cuda.max_memory_allocated(device) - start_bytes if cuda else None
    named_fsdp = [(k, p.full_tensor()) for k, p in model.named_parameters()]

    # The same forward with reshard_after_forward=False keeps every block gathered until its
    # backward (ZeRO-2-like: more memory, no second all-gather). A probe step, not trained on.
    model.set_reshard_after_forward(False)
    out = model(x[shard])
    kept_blocks = sum(gathered_numel(b) for b in model.blocks)
    F.cross_entropy(out, y[shard]).backward()
    opt.zero_grad()
    model.set_reshard_after_forward(True)

    # ---- DDP: every rank holds all parameters, gradients and Adam moments ---------------------
    start_bytes = torch.cuda.memory_allocated(device) if cuda else 0
    replica = copy.deepcopy(base).to(device)
    # gradient_as_bucket_view: the gradients live in DDP's all-reduce buckets (no second copy)
    ddp = DDP(
        replica,
        device_ids=[world.local_rank] if cuda else None,
        gradient_as_bucket_view=True,
    )
    opt_ddp = torch.optim.Adam(ddp.parameters(), lr=lr)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    losses_ddp = []
    for step in range(steps):
        loss = F.cross_entropy(ddp(x[shard]), y[shard])
        loss.backward()
        opt_ddp.step()
        if step == steps - 1:
            ddp_state = training_state(replica, opt_ddp)
        opt_ddp.zero_grad(set_to_none=False)  # bucket views: zeroed, kept
        full = loss.detach().clone()
        dist.all_reduce(full)
        losses_ddp.append(full.item() / n)
    ddp_peak = torch.cuda.max_memory_allocated(device) - start_bytes if cuda else None

    keys_single, weights_single = split_key_biases(list(single.named_parameters()), d)
    keys_fsdp, weights_fsdp = split_key_biases(named_fsdp, d)
    keys_ddp, weights_ddp = split_key_biases(list(replica.named_parameters()), d)
    _, weights_init = split_key_biases(list(base.named_parameters()), d)
    travelled = (weights_single - weights_init.to(device)).norm().item()  # how far training went
    fsdp_vs_single = (weights_fsdp - weights_single).abs().max().item()
    ddp_vs_single = (weights_ddp - weights_single).abs().max().item()
    fsdp_relative = (weights_fsdp - weights_single).norm().item() / travelled
    ddp_relative = (weights_ddp - weights_single).norm().item() / travelled
    keys_fsdp_vs_single = (keys_fsdp - keys_single).abs().max().item()
    keys_ddp_vs_single = (keys_ddp - keys_single).abs().max().item()
    loss_gap = max(abs(a - b) for a, b in zip(losses_fsdp, losses_single, strict=True))
    loss_gap_ddp = max(abs(a - b) for a, b in zip(losses_ddp, losses_single, strict=True))

    # ---- rank 0 collects every rank's measurements ---------------------------------------------
    mine = {
        "fsdp": fsdp_state,
        "ddp": ddp_state,
        "forward": seen["forward"],
        "backward": seen["backward"],
        "peak_gathered": seen["peak_gathered"],
        "after_forward": after_forward,
        "after_backward": after_backward,
        "kept_blocks": kept_blocks,
        "fsdp_peak": fsdp_peak,
        "ddp_peak": ddp_peak,
    }
    ranks = [None] * n
    dist.all_gather_object(ranks, mine)

    def state_bytes(s: dict) -> int:
        return s["param_bytes"] + s["grad_bytes"] + s["adam_bytes"]

    fractions = [r["fsdp"]["param_elems"] / total for r in ranks]
    byte_ratios = [state_bytes(r["fsdp"]) / state_bytes(r["ddp"]) for r in ranks]
    watched_size = block_sizes[1]
    rows = []
    for rank, r in enumerate(ranks):
        sharded, replicated = r["fsdp"], r["ddp"]
        rows.append(
            [
                rank,
                f"{sharded['param_elems']:,} ({sharded['param_elems'] / total:.3f})",
                f"{sharded['grad_elems']:,}",
                f"{sharded['adam_elems']:,}",
                f"{state_bytes(sharded):,}",
                f"{replicated['param_elems']:,}",
                f"{state_bytes(replicated):,}",
                f"{state_bytes(sharded) / state_bytes(replicated):.3f}",
            ]
        )
    result = DemoResult(
        metrics={
            "ranks": n,
            "backend": world.backend,
            "parameters": total,
            "root_parameters": root_size,
            "block_parameters": block_sizes,
            "param_shard_fraction_by_rank": fractions,
            "fsdp_over_ddp_bytes_by_rank": byte_ratios,
            "fsdp_state_by_rank": [r["fsdp"] for r in ranks],
            "ddp_state_by_rank": [r["ddp"] for r in ranks],
            "peak_gathered_params_by_rank": [r["peak_gathered"] for r in ranks],
            "max_loss_diff_fsdp_vs_single": loss_gap,
            "max_loss_diff_ddp_vs_single": loss_gap_ddp,
            "weights_max_diff_fsdp_vs_single": fsdp_vs_single,
            "weights_max_diff_ddp_vs_single": ddp_vs_single,
            "weights_l2_diff_over_l2_travelled_fsdp": fsdp_relative,
            "weights_l2_diff_over_l2_travelled_ddp": ddp_relative,
            "key_bias_max_diff_fsdp_vs_single": keys_fsdp_vs_single,
            "key_bias_max_diff_ddp_vs_single": keys_ddp_vs_single,
            "key_bias_grad_max": key_grad,
            "other_grad_max": other_grad,
            "peak_memory_bytes_fsdp_by_rank": [r["fsdp_peak"] for r in ranks] if cuda else None,
            "peak_memory_bytes_ddp_by_rank": [r["ddp_peak"] for r in ranks] if cuda else None,
        },
        tables=[
            Table(
                "Per-rank training state after a step: elements stored, bytes held (fp32, "
                "distinct storages: padding included)",
                [
                    "rank",
                    "FSDP params (share)",
                    "FSDP grads",
                    "FSDP Adam m+v",
                    "FSDP bytes",
                    "DDP params",
                    "DDP bytes",
                    "FSDP/DDP",
                ],
                rows,
            ),
            Table(
                f"Block 1 ({watched_size:,} parameters) seen from inside, rank 0: gathered "
                "(full) parameter elements",
                ["moment", "gathered elements of block 1", "shard elements"],
                [
                    ["during its forward", ranks[0]["forward"][0], "-"],
                    [
                        "after forward, all blocks (reshard_after_forward=True)",
                        ranks[0]["after_forward"]["blocks"],
                        f"{watched_size / n:,.0f} per block (~1/N)",
                    ],
                    ["during its backward", ranks[0]["backward"][0], "-"],
                    ["after backward (whole model)", ranks[0]["after_backward"], "all sharded"],
                    [
                        "after forward, reshard_after_forward=False (all blocks)",
                        ranks[0]["kept_blocks"],
                        "-",
                    ],
                ],
            ),
            Table(
                "Training loss (global batch)",
                ["step", "one process", "FSDP", "DDP"],
                [
                    [i, f"{a:.7f}", f"{b:.7f}", f"{c:.7f}"]
                    for i, (a, b, c) in enumerate(
                        zip(losses_single, losses_fsdp, losses_ddp, strict=True)
                    )
                ],
            ),
        ],
        curves=[
            Curve(
                "Training loss",
                "step",
                {"single": losses_single, "fsdp": losses_fsdp, "ddp": losses_ddp},
            )
        ],
    )
    if cuda:
        result.tables.append(
            Table(
                "Peak memory allocated per rank while training, above what was allocated "
                "before the model was built (CUDA allocator)",
                ["rank", "FSDP bytes", "DDP bytes", "FSDP/DDP"],
                [
                    [rank, r["fsdp_peak"], r["ddp_peak"], f"{r['fsdp_peak'] / r['ddp_peak']:.3f}"]
                    for rank, r in enumerate(ranks)
                ],
            )
        )
        result.notes.append(
            "The CUDA peaks are reported, not claimed: they include the activations, the same "
            "for FSDP and DDP and, in a model this small, a large share of the peak; "
            "FSDP's saving is the params + grads + Adam bytes in the first table."
        )
    else:
        result.notes.append(
            "Peak memory: the CPU allocator does not report one (torch.cuda.max_memory_allocated "
            "is CUDA only), so the tables count the bytes each rank holds instead."
        )
    result.notes.append(
        f"Key biases are left out of the weight comparison. Softmax ignores a constant added "
        f"to all of a query's scores, so their true gradient is zero; the computed one is "
        f"round-off (max {key_grad:.1e}, vs {other_grad:.1e} elsewhere), and Adam divides it "
        f"by its own tiny RMS (+ eps): each run's round-off becomes a real step, and summing "
        f"the batch in another order moves them {max(keys_fsdp_vs_single, keys_ddp_vs_single):.1e} "
        f"(FSDP {keys_fsdp_vs_single:.1e}, DDP {keys_ddp_vs_single:.1e}) from one process. "
        f"The same happens, weaker, to any weight whose gradient is near Adam's eps (1e-8): "
        f"its update lr·g/(|g|+eps) turns round-off in g into a visible change. Hence the "
        f"weight check is relative to the distance travelled; the largest single-weight "
        f"differences ({max(fsdp_vs_single, ddp_vs_single):.1e}) are such weights."
    )

    # ---- claims ---------------------------------------------------------------------------------
    sums = [sum(r["fsdp"][k] for r in ranks) for k in ("param_elems", "grad_elems", "adam_elems")]
    result.claim(
        "FSDP stores about 1/N of the parameters on each rank, and the shards add up to the "
        "whole model exactly.",
        all(abs(f * n - 1) < 0.1 for f in fractions) and sums[0] == total,
        f"shares by rank {', '.join(f'{f:.4f}' for f in fractions)} (1/N = {1 / n:.4f}); "
        f"sum of shards {sums[0]:,} = {total:,} parameters",
    )
    result.claim(
        "Gradients and both Adam moments are sharded the same way: per rank, grads = params "
        "and m+v = 2x params (elements).",
        all(
            r["fsdp"]["grad_elems"] == r["fsdp"]["param_elems"]
            and r["fsdp"]["adam_elems"] == 2 * r["fsdp"]["param_elems"]
            for r in ranks
        )
        and sums[1] == total
        and sums[2] == 2 * total,
        f"summed over ranks: grads {sums[1]:,}, Adam m+v {sums[2]:,} for {total:,} parameters",
    )
    result.claim(
        "Per rank, FSDP holds about 1/N of the bytes DDP holds for params + grads + Adam state.",
        all(abs(b * n - 1) < 0.1 for b in byte_ratios),
        f"FSDP/DDP by rank {', '.join(f'{b:.3f}' for b in byte_ratios)} (1/N = {1 / n:.3f}); "
        f"DDP {state_bytes(ranks[0]['ddp']):,} B on every rank",
    )
    gathered_in_forward = all(v == watched_size for r in ranks for v in r["forward"])
    gathered_in_backward = all(r["backward"] and r["backward"][0] == watched_size for r in ranks)
    result.claim(
        "A block's parameters are gathered (full) during its forward and again during its "
        "backward, and resharded after each.",
        gathered_in_forward
        and gathered_in_backward
        and all(r["after_forward"]["blocks"] == 0 and r["after_backward"] == 0 for r in ranks),
        f"block 1: {ranks[0]['forward'][0]:,} gathered elements in forward and "
        f"{ranks[0]['backward'][0]:,} in backward (all {watched_size:,}); gathered block "
        f"elements between forward and backward: {ranks[0]['after_forward']['blocks']}; "
        f"after backward: {ranks[0]['after_backward']}",
    )
    result.claim(
        "With reshard_after_forward=False every block stays gathered from forward to backward "
        "(no second all-gather, more memory).",
        all(r["kept_blocks"] == sum(block_sizes) for r in ranks),
        f"gathered block elements after forward: {ranks[0]['kept_blocks']:,} of "
        f"{sum(block_sizes):,}",
    )
    result.claim(
        "The root module (embed, final LayerNorm, head) is the exception: FSDP2 keeps it "
        "gathered from forward to backward, since backward needs it at once.",
        all(r["after_forward"]["root"] == root_size for r in ranks),
        f"root parameters gathered between forward and backward: "
        f"{ranks[0]['after_forward']['root']:,} of {root_size:,}",
    )
    peaks = [r["peak_gathered"] for r in ranks]
    result.claim(
        "At any moment only the root and about one block are gathered: the peak of full "
        "parameters is well below the whole model.",
        all(p <= root_size + 2 * max(block_sizes) and p < 0.75 * total for p in peaks),
        f"peak gathered {max(peaks):,} of {total:,} ({max(peaks) / total:.2f}); root "
        f"{root_size:,} + one block {max(block_sizes):,} = {root_size + max(block_sizes):,}",
    )
    result.claim(
        f"Over {steps} Adam steps FSDP's training loss equals one process on the whole batch "
        "(float round-off), as does DDP's.",
        loss_gap < 1e-5 and loss_gap_ddp < 1e-5,
        f"max |Δloss| FSDP {loss_gap:.1e}, DDP {loss_gap_ddp:.1e}",
    )
    result.claim(
        "So do the weights (all but the key biases: see the note): they differ from one "
        "process's by under 1e-4 of the distance training moved them.",
        fsdp_relative < 1e-4 and ddp_relative < 1e-4,
        f"‖Δw‖ / ‖w - w0‖: FSDP {fsdp_relative:.1e}, DDP {ddp_relative:.1e}; largest "
        f"element |Δw|: FSDP {fsdp_vs_single:.1e}, DDP {ddp_vs_single:.1e}",
    )
    return result


if __name__ == "__main__":
    entry("fsdp-sharding", run)
