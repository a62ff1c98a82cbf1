"""Data parallelism with DistributedDataParallel: every rank ends each step with the same,
full-batch gradient.

What it shows: DDP keeps a full replica of the model on every rank and splits each global
batch between them. Each rank computes the gradient of the loss on its own shard; during
backward, DDP all-reduces (averages) the gradients bucket by bucket, overlapping the
communication with the rest of backward. After the all-reduce every rank holds the same
gradient - the gradient one process would compute on the whole batch (for a loss that is a
mean over samples and shards of equal size) - so every replica takes the same optimiser step
and stays identical without ever broadcasting weights again. The price is memory: every
rank holds all parameters, gradients and optimiser state (what FSDP/ZeRO shard instead), and
each step all-reduces a full gradient's worth of bytes.

Run: dlprep demo ddp --nproc 2
     torchrun --nproc_per_node 2 -m dlprep.demos.ddp
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table
from dlprep.demos._dist import World, entry

DISTRIBUTED = True
STATISTICAL = False


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )


def run(ctx: DemoContext, world: World) -> DemoResult:
    device = torch.device(world.device)
    torch.manual_seed(ctx.seed)  # the same initial weights everywhere (DDP would broadcast
    model = make_model().to(device)  # rank 0's anyway)
    single = copy.deepcopy(model)  # the one-process reference, trained on the full batch

    per_rank = ctx.pick(16, 64)
    batch = per_rank * world.world_size
    g = torch.Generator().manual_seed(ctx.seed + 1)
    x = torch.randn(batch, 16, generator=g).to(device)  # (B, 16): the same data on every rank
    y = (x[:, :1] * x[:, 1:2] + 0.1 * torch.randn(batch, 1, generator=g)).to(device)
    shard = slice(world.rank * per_rank, (world.rank + 1) * per_rank)  # this rank's part

    ddp = DDP(model, device_ids=[world.local_rank] if device.type == "cuda" else None)
    loss_fn = nn.MSELoss()

    # ---- one step: is the all-reduced gradient the full-batch gradient? -------------------
    loss_fn(ddp(x[shard]), y[shard]).backward()
    loss_fn(single(x), y).backward()
    local = torch.cat([p.grad.flatten() for p in model.parameters()])
    reference = torch.cat([p.grad.flatten() for p in single.parameters()])
    gathered = [torch.empty_like(local) for _ in range(world.world_size)]
    dist.all_gather(gathered, local)
    spread_across_ranks = max((t - gathered[0]).abs().max().item() for t in gathered)
    vs_single = (local - reference).abs().max().item()

    # ---- train both: the replicas stay identical and follow single-process training --------
    steps = ctx.pick(30, 200)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
    opt_single = torch.optim.SGD(single.parameters(), lr=0.05)
    opt.zero_grad()
    opt_single.zero_grad()
    losses_ddp, losses_single = [], []
    for _ in range(steps):
        loss = loss_fn(ddp(x[shard]), y[shard])
        loss.backward()
        opt.step()
        opt.zero_grad()
        full = loss.detach().clone()
        dist.all_reduce(full)  # the mean of the shard losses is the full-batch loss
        losses_ddp.append(full.item() / world.world_size)
        loss_single = loss_fn(single(x), y)
        loss_single.backward()
        opt_single.step()
        opt_single.zero_grad()
        losses_single.append(loss_single.item())
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    weights_single = torch.cat([p.detach().flatten() for p in single.parameters()])
    drift = (weights - weights_single).abs().max().item()
    all_weights = [torch.empty_like(weights) for _ in range(world.world_size)]
    dist.all_gather(all_weights, weights)
    replica_spread = max((w - all_weights[0]).abs().max().item() for w in all_weights)

    n_params = local.numel()
    result = DemoResult(
        metrics={
            "ranks": world.world_size,
            "backend": world.backend,
            "global_batch": batch,
            "per_rank_batch": per_rank,
            "parameters": n_params,
            "grad_spread_across_ranks": spread_across_ranks,
            "grad_max_diff_vs_single_process": vs_single,
            "weights_max_diff_vs_single_process": drift,
            "replica_spread_after_training": replica_spread,
            "allreduce_bytes_per_step": n_params * local.element_size(),
            "final_loss_ddp": losses_ddp[-1],
            "final_loss_single": losses_single[-1],
        },
        tables=[
            Table(
                "Per step",
                ["", "DDP (all ranks)", "one process"],
                [
                    ["samples per process", per_rank, batch],
                    ["parameters per process", n_params, n_params],
                    ["final loss", f"{losses_ddp[-1]:.6f}", f"{losses_single[-1]:.6f}"],
                ],
            )
        ],
        curves=[
            Curve("Training loss", "step", {"ddp": losses_ddp, "single": losses_single}, log_y=True)
        ],
    )
    result.claim(
        "After DDP's all-reduce every rank holds exactly the same gradient.",
        spread_across_ranks == 0.0,
        f"max difference between ranks = {spread_across_ranks:.1e}",
    )
    result.claim(
        "That gradient equals the full-batch gradient of one process (float32 round-off).",
        vs_single < 1e-5,
        f"max |Δ| = {vs_single:.1e}",
    )
    result.claim(
        f"After {steps} SGD steps the replicas are still identical and match single-process "
        "training.",
        replica_spread == 0.0 and drift < 1e-4,
        f"spread between replicas = {replica_spread:.1e}, vs one process = {drift:.1e}",
    )
    return result


if __name__ == "__main__":
    entry("ddp", run)
