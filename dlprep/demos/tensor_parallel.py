"""Tensor parallelism (Megatron-LM): a column- then row-split MLP, one all-reduce each way.

What it shows: the split MLP equals the unsplit one (output and every gradient), each rank
holds 1/N of its weights, and a step needs one all-reduce forward and one backward.

The idea (Shoeybi et al. 2019, arXiv 1909.08053): split each layer's weight matrices, not the
batch. For the transformer MLP  Y = GeLU(X W1 + b1) W2 + b2  with N ranks:
- W1 (D -> H) is split by output columns: rank r holds H/N of the hidden units and computes
  its own slice X W1[:, r] of the hidden pre-activations from the full input X. GeLU (or
  ReLU) acts on each element alone, so GeLU of a slice is the slice of GeLU: every rank
  applies the nonlinearity to its own hidden units with no communication. Splitting W1 by
  input rows instead would leave every rank with a partial sum of all H pre-activations,
  and GeLU(a + b) != GeLU(a) + GeLU(b): that split needs an all-reduce of the whole (B, H)
  hidden layer before the nonlinearity.
- W2 (H -> D) is split by input rows, matching: rank r multiplies its hidden slice by its H/N
  rows of W2 and gets a partial sum of the output; Y is the sum over ranks.
- So forward needs exactly one all-reduce, of the (B, D) output: Megatron's "g" operator
  (forward all-reduce, backward identity). Backward needs exactly one, of the (B, D) input
  gradient: each rank's dL/dX comes from its own hidden units only, so it is a partial sum too:
  the "f" operator (forward identity, backward all-reduce). Both are written here as autograd
  Functions. The weight gradients need no communication at all: each rank's shard gets its
  complete gradient locally. The bias b2 is replicated and added once, after the sum.

What really happens, measured: the split layer's output and every shard's gradient equal the
unsplit layer's up to round-off (the all-reduce adds the N partial products in another order
than one matmul does: ~1e-7 in float32, ~1e-16 in float64). Each rank holds exactly 1/N of
W1, b1, W2 and of the (B, H) hidden activation, plus the replicated D-element b2 (so slightly
more than 1/N of all parameters), while the (B, D) input and output stay replicated on every
rank (what sequence parallelism then shards). The traffic is activations, not weights: two
(B, D) all-reduces per step per MLP, independent of H, and blocking (the next layer needs
their result), which is why tensor parallelism is kept inside a node, on fast links. If the
input needs no gradient (a first layer), the backward all-reduce is skipped altogether.
PyTorch's own `parallelize_module` with `ColwiseParallel`/`RowwiseParallel` (DTensor, on a
CPU DeviceMesh over gloo) shards the weights the same way and issues the same two all-reduces.

Run: dlprep demo tensor-parallel --nproc 2
     torchrun --nproc_per_node 2 -m dlprep.demos.tensor_parallel
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table
from dlprep.demos._dist import World, entry
from dlprep.errors import UsageError

DISTRIBUTED = True
STATISTICAL = False


# ---- Megatron's two conjugate operators ------------------------------------------------------
class CopyToTensorParallel(torch.autograd.Function):
    """f: the input enters every rank's shard as is; in backward each rank's input gradient
    covers only its own hidden units, so the full gradient is the sum over ranks."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)  # sum of the N partial input gradients
        return grad


class ReduceFromTensorParallel(torch.autograd.Function):
    """g: each rank's output is a partial sum over its hidden units; the output is their sum.
    The sum passes the same gradient to every term, so backward is the identity."""

    @staticmethod
    def forward(ctx, partial):
        out = partial.clone()
        dist.all_reduce(out)  # sum of the N partial outputs
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad


class ParallelMLP(nn.Module):
    """Rank `rank`'s part of Linear(D, H) -> GeLU -> Linear(H, D), cut from the unsplit one."""

    def __init__(self, full: nn.Sequential, rank: int, world_size: int):
        super().__init__()
        fc1, fc2 = full[0], full[2]
        per_rank = fc1.out_features // world_size
        own = slice(rank * per_rank, (rank + 1) * per_rank)  # this rank's hidden units
        # PyTorch stores Linear weights as (out, in): fc1's output columns are its rows.
        self.w1 = nn.Parameter(fc1.weight.detach()[own].clone())  # (H/N, D) column-parallel
        self.b1 = nn.Parameter(fc1.bias.detach()[own].clone())  # (H/N,)
        self.w2 = nn.Parameter(fc2.weight.detach()[:, own].clone())  # (D, H/N) row-parallel
        self.b2 = nn.Parameter(fc2.bias.detach().clone())  # (D,) replicated: added once
        self.hidden_numel = 0

    def forward(self, x):  # x: (B, D), the same on every rank
        x = CopyToTensorParallel.apply(x)  # f
        h = F.gelu(F.linear(x, self.w1, self.b1))  # (B, H/N): local, no communication
        self.hidden_numel = h.numel()
        partial = F.linear(h, self.w2)  # (B, D): this rank's partial sum of the output
        return ReduceFromTensorParallel.apply(partial) + self.b2  # g, then the bias once


def make_mlp(d_model: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))


COLLECTIVES = ("reduce", "gather", "scatter", "broadcast", "all_to_all", "alltoall", "send", "recv")


class CollectiveLog(TorchDispatchMode):
    """Records every collective that reaches the dispatcher (hand-written c10d calls and
    DTensor's functional ones alike) with the bytes of the tensors it was given."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func.overloadpacket)  # e.g. "c10d.allreduce_", "_c10d_functional.all_reduce"
        if "c10d" in name.split(".")[0] and any(c in name for c in COLLECTIVES):
            tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            self.calls.append((name, sum(t.numel() * t.element_size() for t in tensors)))
        return func(*args, **kwargs)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach() - b.detach()).abs().max().item()


def run(ctx: DemoContext, world: World) -> DemoResult:
    device = torch.device(world.device)
    n, rank = world.world_size, world.rank
    d_model = ctx.pick(16, 64)
    hidden = 4 * d_model
    tokens = ctx.pick(32, 256)  # B: batch x sequence positions, flattened
    if n < 2 or hidden % n:
        raise UsageError(f"tensor-parallel needs 2 or more ranks dividing H = {hidden}, not {n}")
    per_rank = hidden // n
    own = slice(rank * per_rank, (rank + 1) * per_rank)

    torch.manual_seed(ctx.seed)  # the same unsplit model on every rank, to cut shards from
    reference = make_mlp(d_model, hidden).to(device)
    g = torch.Generator().manual_seed(ctx.seed + 1)
    x_all = torch.randn(tokens, d_model, generator=g)  # the same input on every rank
    teacher = torch.randn(d_model, d_model, generator=g) / d_model**0.5
    y_all = torch.tanh(x_all @ teacher)  # (B, D): a target to train towards

    # ---- 1. output and gradients equal the unsplit layer's, in float32 and float64 -----------
    def compare(dtype):
        full = copy.deepcopy(reference).to(dtype)
        tp = ParallelMLP(full, rank, n)
        x, y = x_all.to(device, dtype), y_all.to(device, dtype)
        x_ref, x_tp = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_ref, out_tp = full(x_ref), tp(x_tp)
        F.mse_loss(out_ref, y).backward()
        F.mse_loss(out_tp, y).backward()
        return {
            "output": max_diff(out_tp, out_ref),
            "input grad": max_diff(x_tp.grad, x_ref.grad),
            "fc1.weight": max_diff(tp.w1.grad, full[0].weight.grad[own]),
            "fc1.bias": max_diff(tp.b1.grad, full[0].bias.grad[own]),
            "fc2.weight": max_diff(tp.w2.grad, full[2].weight.grad[:, own]),
            "fc2.bias": max_diff(tp.b2.grad, full[2].bias.grad),
        }, (tp, out_tp, x_tp)

    diffs32, _ = compare(torch.float32)
    diffs64, (tp64, out64, x64) = compare(torch.float64)  # kept to compare with DTensor

    # ---- 2. why GeLU needs no communication after a column split, but would after a row split
    fc1 = copy.deepcopy(reference[0]).double()
    x = x_all.to(device, torch.float64)
    with torch.no_grad():
        hidden_ref = F.gelu(fc1(x))  # (B, H): the unsplit activations
        # Column split: GeLU of this rank's hidden units, from its rows of W1.
        column = F.gelu(F.linear(x, fc1.weight[own], fc1.bias[own]))  # (B, H/N)
        column_diff = max_diff(column, hidden_ref[:, own])
        # Row (input) split of W1: every rank gets a partial sum of all H pre-activations.
        inputs = torch.tensor_split(torch.arange(d_model, device=device), n)[rank]
        partial = F.linear(x[:, inputs], fc1.weight[:, inputs])  # (B, H)
        if rank == 0:
            partial = partial + fc1.bias
        gelu_then_sum = F.gelu(partial)
        dist.all_reduce(gelu_then_sum)  # sum of GeLU(partial sums): wrong
        sum_then_gelu = partial.clone()
        dist.all_reduce(sum_then_gelu)  # an extra (B, H) all-reduce before the nonlinearity
        sum_then_gelu = F.gelu(sum_then_gelu)
    scale = hidden_ref.abs().max().item()
    wrong_rel = max_diff(gelu_then_sum, hidden_ref) / scale
    right_diff = max_diff(sum_then_gelu, hidden_ref)

    # ---- 3. memory: each rank's parameters and hidden activation -----------------------------
    local = {name: p.numel() for name, p in tp64.named_parameters()}
    local["hidden activation"] = tp64.hidden_numel
    unsplit = {
        "w1": reference[0].weight.numel(),
        "b1": reference[0].bias.numel(),
        "w2": reference[2].weight.numel(),
        "b2": reference[2].bias.numel(),
        "hidden activation": tokens * hidden,
    }
    # The shards partition the weights: gathered in rank order they rebuild the unsplit ones.
    w1_shards = [torch.empty_like(tp64.w1) for _ in range(n)]
    w2_shards = [torch.empty_like(tp64.w2.T.contiguous()) for _ in range(n)]
    dist.all_gather(w1_shards, tp64.w1.detach())
    dist.all_gather(w2_shards, tp64.w2.detach().T.contiguous())
    rebuilt = max(
        max_diff(torch.cat(w1_shards), reference[0].weight.double()),
        max_diff(torch.cat(w2_shards).T, reference[2].weight.double()),
    )

    # ---- 4. communication: every collective in one forward and one backward (float32) --------
    full32 = copy.deepcopy(reference)
    tp32 = ParallelMLP(full32, rank, n)
    x32 = x_all.to(device).clone().requires_grad_()
    y32 = y_all.to(device)
    with CollectiveLog() as fwd_log:
        loss = F.mse_loss(tp32(x32), y32)
    with CollectiveLog() as bwd_log:
        loss.backward()
    loss = F.mse_loss(tp32(x_all.to(device)), y32)  # a first layer: input needs no gradient
    with CollectiveLog() as bwd_no_input_grad:
        loss.backward()
    output_bytes = tokens * d_model * x32.element_size()  # one (B, D) float32 tensor

    # ---- 5. the same with PyTorch's DTensor tensor parallelism -------------------------------
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    mesh = init_device_mesh(device.type, (n,))
    dtensor = parallelize_module(
        copy.deepcopy(reference).double(), mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()}
    )
    x_dt = x_all.to(device, torch.float64).requires_grad_()  # the input and loss of section 1
    with CollectiveLog() as dt_fwd_log:
        out_dt = dtensor(x_dt)
        loss_dt = F.mse_loss(out_dt, y_all.to(device, torch.float64))
    with CollectiveLog() as dt_bwd_log:
        loss_dt.backward()
    dt_vs_hand = max(
        max_diff(out_dt, out64),
        max_diff(x_dt.grad, x64.grad),
        max_diff(dtensor[0].weight.grad.to_local(), tp64.w1.grad),
        max_diff(dtensor[0].bias.grad.to_local(), tp64.b1.grad),
        max_diff(dtensor[2].weight.grad.to_local(), tp64.w2.grad),
        max_diff(dtensor[2].bias.grad.to_local(), tp64.b2.grad),
    )
    dt_shapes = {name: tuple(p.to_local().shape) for name, p in dtensor.named_parameters()}
    dt_placements = {name: str(p.placements[0]) for name, p in dtensor.named_parameters()}
    hand_shapes = [tuple(p.shape) for p in tp64.parameters()]

    # ---- 6. train both: tensor-parallel SGD follows single-process SGD -----------------------
    steps = ctx.pick(20, 100)
    single = copy.deepcopy(reference)
    tp = ParallelMLP(copy.deepcopy(reference), rank, n)
    opt = torch.optim.SGD(tp.parameters(), lr=0.1)
    opt_single = torch.optim.SGD(single.parameters(), lr=0.1)
    x, y = x_all.to(device), y_all.to(device)
    losses_tp, losses_single = [], []
    for _ in range(steps):
        loss = F.mse_loss(tp(x), y)  # the same on every rank: the output is replicated
        loss.backward()
        opt.step()  # each rank updates its own shard: no gradient all-reduce
        opt.zero_grad()
        losses_tp.append(loss.item())
        loss_single = F.mse_loss(single(x), y)
        loss_single.backward()
        opt_single.step()
        opt_single.zero_grad()
        losses_single.append(loss_single.item())
    loss_gap = max(abs(a - b) / b for a, b in zip(losses_tp, losses_single, strict=True))
    weight_drift = max(
        max_diff(tp.w1, single[0].weight[own]),
        max_diff(tp.b1, single[0].bias[own]),
        max_diff(tp.w2, single[2].weight[:, own]),
        max_diff(tp.b2, single[2].bias),
    )
    b2_all = [torch.empty_like(tp.b2) for _ in range(n)]
    dist.all_gather(b2_all, tp.b2.detach())
    b2_spread = max(max_diff(b, b2_all[0]) for b in b2_all)

    # ---- rank 0 collects every rank's measurements -------------------------------------------
    mine = {
        "rank": rank,
        "diffs32": diffs32,
        "diffs64": diffs64,
        "column_diff": column_diff,
        "wrong_rel": wrong_rel,
        "right_diff": right_diff,
        "local": local,
        "output_numel": out64.numel(),
        "fwd": fwd_log.calls,
        "bwd": bwd_log.calls,
        "bwd_no_input_grad": bwd_no_input_grad.calls,
        "dt_fwd": dt_fwd_log.calls,
        "dt_bwd": dt_bwd_log.calls,
        "dt_vs_hand": dt_vs_hand,
        "dt_shapes": dt_shapes,
        "hand_shapes": hand_shapes,
        "loss_gap": loss_gap,
        "weight_drift": weight_drift,
    }
    ranks = [None] * n
    dist.all_gather_object(ranks, mine)

    worst32 = max(max(r["diffs32"].values()) for r in ranks)
    worst64 = max(max(r["diffs64"].values()) for r in ranks)
    out32 = max(r["diffs32"]["output"] for r in ranks)
    out64 = max(r["diffs64"]["output"] for r in ranks)
    column_worst = max(r["column_diff"] for r in ranks)
    wrong_worst = min(r["wrong_rel"] for r in ranks)
    right_worst = max(r["right_diff"] for r in ranks)
    sharded = ("w1", "b1", "w2", "hidden activation")
    exact_share = all(r["local"][k] * n == unsplit[k] for r in ranks for k in sharded)
    b2_replicated = all(r["local"]["b2"] == unsplit["b2"] for r in ranks)
    total_unsplit = sum(v for k, v in unsplit.items() if k != "hidden activation")
    total_local = [sum(v for k, v in r["local"].items() if k != "hidden activation") for r in ranks]
    expected_local = (total_unsplit - unsplit["b2"]) // n + unsplit["b2"]

    def summary(calls):  # (count, bytes of each) per rank, to check they agree
        return len(calls), sorted({b for _, b in calls}), sorted({op for op, _ in calls})

    fwd = [summary(r["fwd"]) for r in ranks]
    bwd = [summary(r["bwd"]) for r in ranks]
    bwd_none = [summary(r["bwd_no_input_grad"]) for r in ranks]
    dt_fwd = [summary(r["dt_fwd"]) for r in ranks]
    dt_bwd = [summary(r["dt_bwd"]) for r in ranks]
    one_output_sized = all(c == 1 and b == [output_bytes] for c, b, _ in fwd + bwd)
    ring = 2 * (n - 1) / n  # a bandwidth-optimal ring all-reduce sends this x the tensor
    split_bytes = tokens * hidden * 4  # the (B, H) float32 pre-activations

    def comm_row(label, by_rank):
        count, sizes, ops = by_rank[0]
        same = all(c == by_rank[0] for c in by_rank)
        size = sizes[0] if sizes else 0
        shown = f"{count}" if same else f"{count} (ranks differ)"
        return [
            label,
            shown,
            ", ".join(ops).replace("_c10d_functional", "funcol") or "-",
            size,
            round(ring * size * count),
        ]

    compared_with = {
        "output": "output",
        "input grad": "input grad (all-reduced)",
        "fc1.weight": "grad, rank's rows",
        "fc1.bias": "grad, rank's entries",
        "fc2.weight": "grad, rank's columns",
        "fc2.bias": "grad, whole (replicated)",
    }
    first = ranks[0]["local"]
    split_of = {
        "w1": ("fc1.weight W1", f"by output: {per_rank} of {hidden} hidden units"),
        "b1": ("fc1.bias b1", "with W1's hidden units"),
        "w2": ("fc2.weight W2", f"by input: the same {per_rank} hidden units"),
        "b2": ("fc2.bias b2", "replicated, added once after the sum"),
        "hidden activation": (f"hidden activation (B={tokens}, H)", "this rank's hidden units"),
    }
    memory_rows = [
        [label, unsplit[k], first[k], f"{first[k] / unsplit[k]:.3f}", how]
        for k, (label, how) in split_of.items()
    ]
    memory_rows.insert(
        4,
        ["all parameters", total_unsplit, total_local[0],
         f"{total_local[0] / total_unsplit:.3f}", f"1/N = {1 / n:.3f}"],
    )  # fmt: skip
    io = ranks[0]["output_numel"]
    memory_rows.append([f"input, output (B={tokens}, D)", io, io, "1.000", "replicated"])
    comm_rows = [
        comm_row("forward: g on output", fwd),
        comm_row("backward: f on dL/dx", bwd),
        comm_row("backward, x needs no grad", bwd_none),
        comm_row("DTensor fwd (float64)", dt_fwd),
        comm_row("DTensor bwd (float64)", dt_bwd),
        ["input-split W1 (extra)", 1, "c10d.allreduce_", split_bytes,
         round(ring * split_bytes)],
    ]  # fmt: skip

    result = DemoResult(
        metrics={
            "ranks": n,
            "backend": world.backend,
            "d_model": d_model,
            "hidden": hidden,
            "tokens": tokens,
            "output_max_diff_float32": out32,
            "output_max_diff_float64": out64,
            "grad_max_diff_float32": worst32,
            "grad_max_diff_float64": worst64,
            "gelu_column_split_max_diff": column_worst,
            "gelu_before_sum_relative_error": wrong_worst,
            "params_unsplit": total_unsplit,
            "params_per_rank": total_local,
            "param_fraction_per_rank": total_local[0] / total_unsplit,
            "forward_allreduces": fwd[0][0],
            "backward_allreduces": bwd[0][0],
            "allreduce_bytes_each": output_bytes,
            "comm_bytes_per_step": output_bytes * (fwd[0][0] + bwd[0][0]),
            "dtensor_vs_hand_max_diff": max(r["dt_vs_hand"] for r in ranks),
            "train_loss_max_relative_gap": max(r["loss_gap"] for r in ranks),
            "train_weight_max_drift": max(r["weight_drift"] for r in ranks),
            "final_loss_tp": losses_tp[-1],
            "final_loss_single": losses_single[-1],
        },
        tables=[
            Table(
                f"What each of the {n} ranks holds (elements, measured on rank 0's module)",
                ["tensor", "unsplit", "per rank", "share", "how it is split"],
                memory_rows,
            ),
            Table(
                f"Tensor-parallel vs unsplit: max |Δ| over the {n} ranks",
                ["tensor", "compared with (unsplit)", "float32", "float64"],
                [
                    [
                        k,
                        against,
                        f"{max(r['diffs32'][k] for r in ranks):.1e}",
                        f"{max(r['diffs64'][k] for r in ranks):.1e}",
                    ]
                    for k, against in compared_with.items()
                ],
            ),
            Table(
                "Collectives recorded in one step (float32 unless noted; bytes all-reduced)",
                ["phase", "count", "op", "bytes each", "ring model: sent/rank"],
                comm_rows,
            ),
            Table(
                "GeLU after the first Linear (float64, max |Δ| vs unsplit hidden activations)",
                ["split of W1", "communication before GeLU", "max |Δ|"],
                [
                    ["by output columns (Megatron)", "none", f"{column_worst:.1e}"],
                    [
                        "by input rows, GeLU then sum",
                        "all-reduce after GeLU",
                        f"{wrong_worst * scale:.2e} ({wrong_worst:.0%} of max |h|)",
                    ],
                    [
                        "by input rows, sum then GeLU",
                        f"all-reduce of (B, H) = {hidden}/{d_model} x the output's bytes",
                        f"{right_worst:.1e}",
                    ],
                ],
            ),  # fmt: skip
        ],
        curves=[
            Curve(
                "Training loss (SGD, float32)",
                "step",
                {"tensor-parallel": losses_tp, "single process": losses_single},
                log_y=True,
            )
        ],
        notes=[
            "DTensor: parallelize_module(model, init_device_mesh(device, (N,)), "
            "{'0': ColwiseParallel(), '2': RowwiseParallel()}) ran on gloo with torch "
            f"{torch.__version__}; its local shards have shapes {dt_shapes} "
            f"(placements {dt_placements}), the hand-written ones {hand_shapes}.",
            "The all-reduced tensors are activations, (B, D) each, whatever H is: "
            f"{output_bytes * 2} bytes per step here, vs {total_unsplit * 4} bytes of float32 "
            "gradients that DDP would all-reduce for the same MLP. They sit on the critical path "
            "(the next layer waits for them), so tensor parallelism is kept within a node.",
            "The input and output (B, D) are replicated on every rank, and so are their "
            "LayerNorm/dropout in a transformer block: sequence parallelism splits those along "
            "the sequence, turning each all-reduce into a reduce-scatter + all-gather.",
        ],
    )
    result.claim(
        "The column- then row-parallel MLP gives the unsplit layer's output: the all-reduce "
        "of the N partial sums only changes the order of additions.",
        out64 < 1e-12 and out32 < 1e-5,
        f"max |Δ| over ranks: float32 {out32:.1e}, float64 {out64:.1e}",
    )
    result.claim(
        "Every shard's gradient is exactly its slice of the unsplit model's gradient, and the "
        "all-reduced input gradient is the full one.",
        worst64 < 1e-12 and worst32 < 1e-5,
        f"max |Δ| over ranks and tensors: float32 {worst32:.1e}, float64 {worst64:.1e}",
    )
    result.claim(
        "GeLU acts elementwise, so each rank applies it to its own hidden units without "
        "communication; on the partial sums of an input-split W1 it would be wrong, and that "
        "split needs an extra (B, H) all-reduce before the nonlinearity.",
        column_worst < 1e-12 and wrong_worst > 0.01 and right_worst < 1e-12,
        f"column split {column_worst:.1e}; GeLU of partial sums off by {wrong_worst:.0%} of "
        f"max |h|; all-reduce first {right_worst:.1e}",
    )
    result.claim(
        f"Each rank holds 1/{n} of W1, b1, W2 and of the hidden activation (the replicated b2 "
        "aside), and the shards partition the weights with no element held twice.",
        exact_share
        and b2_replicated
        and all(t == expected_local for t in total_local)
        and rebuilt == 0.0,
        f"parameters per rank {total_local} of {total_unsplit} "
        f"({total_local[0] / total_unsplit:.3f}, 1/N = {1 / n:.3f}); shards gathered rebuild "
        f"W1, W2 with max |Δ| {rebuilt:.0e}",
    )
    result.claim(
        "One step needs one all-reduce of the (B, D) output forward and one of the (B, D) "
        "input gradient backward; the weight gradients need none (and a layer whose input "
        "needs no gradient skips the backward one).",
        one_output_sized and all(c == 0 for c, _, _ in bwd_none),
        f"forward {fwd[0][0]} x {fwd[0][1]} B, backward {bwd[0][0]} x {bwd[0][1]} B "
        f"(B·D·4 = {output_bytes}), without input grad {bwd_none[0][0]}",
    )
    dt_same_comm = all(
        c == 1 and b == [2 * output_bytes] for c, b, _ in dt_fwd + dt_bwd
    )  # float64: twice the float32 bytes
    result.claim(
        "PyTorch's ColwiseParallel/RowwiseParallel (DTensor) shard the same way and issue the "
        "same two all-reduces, with the same outputs and gradients.",
        dt_same_comm
        and all(r["dt_vs_hand"] < 1e-12 for r in ranks)
        and all(list(r["dt_shapes"].values()) == r["hand_shapes"] for r in ranks),
        f"DTensor forward {dt_fwd[0][0]} x {dt_fwd[0][1]} B, backward {dt_bwd[0][0]} x "
        f"{dt_bwd[0][1]} B; max |Δ| vs hand-written {max(r['dt_vs_hand'] for r in ranks):.1e}",
    )
    gap = max(r["loss_gap"] for r in ranks)
    drift = max(r["weight_drift"] for r in ranks)
    result.claim(
        f"{steps} SGD steps of tensor-parallel training follow single-process training "
        "(same losses, same weights) and the replicated bias stays identical on every rank.",
        gap < 1e-5 and drift < 1e-5 and b2_spread == 0.0 and losses_tp[-1] < losses_tp[0],
        f"loss {losses_tp[0]:.4f} -> {losses_tp[-1]:.4f}; max relative loss gap {gap:.1e}, "
        f"max weight drift {drift:.1e}, b2 spread across ranks {b2_spread:.0e}",
    )
    return result


if __name__ == "__main__":
    entry("tensor-parallel", run)
