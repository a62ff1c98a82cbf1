"""Naive model parallelism: layers split across ranks compute exactly the unsplit model, with
1/p of its weights each, but one batch in flight keeps only one rank busy at a time.

What it shows: when a model does not fit on one device, cut it by layers: rank 0 holds the
first layers, rank 1 the next ones, and so on. Forward, each rank runs its layers and sends the
activations to the next rank (`dist.isend`/`dist.recv`); the last rank computes the loss.
Backward runs the chain in reverse: each rank receives the gradient of the loss with respect to
its output, backpropagates through its layers (`output.backward(grad)`), which also fills its
weights' gradients, and sends the gradient with respect to its input to the previous rank. The
result is exactly the unsplit model's output and gradients, and each rank keeps only its own
weights, gradients and optimiser state. The price is the dependency chain: with one batch in
flight, rank r can only start when rank r-1 has finished, so at any moment one rank computes
and the others wait: utilisation 1/p. Cutting the batch into m micro-batches and streaming them
(rank r works on micro-batch i while rank r+1 works on i-1) is pipeline parallelism (GPipe):
utilisation rises towards m/(m+p-1).

How it is measured: each stage's work is made dominant and uniform on purpose: after its real
layers, every stage sleeps a fixed time per sample in forward and twice that in backward, a
stand-in for kernels on that rank's own accelerator (this CPU has 2 cores for up to 4 ranks,
so real arithmetic would measure the cores being shared, not the chain). The streamed version
is a hand-written GPipe schedule: all forwards, then all backwards. Every rank times its
forward and backward computations (not its waits); busy time over the step's wall time (from a
common barrier until the last rank finishes) is its utilisation.

What really happens: naive splitting gives 1/p to within a few thousandths. Streaming gets
close to m/(m+p-1) but stays below it, since each micro-batch also pays a send/receive and
Python bookkeeping (and on a loaded machine a waiting rank wakes late): the smaller the
micro-batches, the larger that share, until the step stops getting faster (in full runs here,
m = 16 was no faster than m = 8; a note says where the step was fastest).

Run: dlprep demo model-parallel --nproc 2
     torchrun --nproc_per_node 2 -m dlprep.demos.model_parallel
"""

from __future__ import annotations

import copy
import socket
import statistics
import time

import torch
import torch.distributed as dist
from torch import nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table
from dlprep.demos._dist import World, entry
from dlprep.demos._pipeline import Stage, flat, on_one_clock, timeline
from dlprep.errors import UsageError

DISTRIBUTED = True
STATISTICAL = False

FEATURES, HIDDEN = 16, 64


def make_blocks(p: int) -> list[nn.Module]:
    """A small MLP: an input layer, two hidden (Linear, Tanh) blocks per rank, a Linear head."""
    blocks: list[nn.Module] = [nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.Tanh())]
    blocks += [nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.Tanh()) for _ in range(2 * p)]
    return blocks + [nn.Linear(HIDDEN, 1)]


def my_blocks(rank: int, p: int) -> list[int]:
    """Two hidden blocks per rank, so that the weights split evenly; the small input layer goes
    with the first rank and the head with the last."""
    return [0] * (rank == 0) + [1 + 2 * rank, 2 + 2 * rank] + [2 * p + 1] * (rank == p - 1)


class Clock:
    """Busy intervals (kind, micro-batch, start, end) of this rank's computations."""

    def __init__(self, device: torch.device):
        self.device = device
        self.intervals: list = []

    def run(self, kind: str, i: int, fn):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.intervals.append((kind, i, start, time.perf_counter()))
        return out


def train_step(stage: Stage, world: World, x, y, m: int, clock: Clock):
    """Forward and backward of one batch through the chain of ranks, as m micro-batches.

    m = 1 is naive model parallelism. With m > 1 a rank sends micro-batch i on (without
    waiting for it to arrive) and starts on i+1: the next rank works on i meanwhile.
    Returns the last rank's outputs (B, 1) and the batch's loss; None elsewhere.
    """
    rank, p = world.rank, world.world_size
    first, last = rank == 0, rank == p - 1
    device = x.device
    inputs, outputs, losses, sends = [], [], [], []
    for i, (xi, yi) in enumerate(zip(x.tensor_split(m), y.tensor_split(m), strict=True)):
        if first:
            h = xi  # (b, 16)
        else:
            h = torch.empty(xi.shape[0], HIDDEN, device=device)  # (b, H) from the rank before
            dist.recv(h, src=rank - 1)
            h.requires_grad_()  # we will need the loss's gradient with respect to it
        out = clock.run("F", i, lambda h=h: stage(h))
        if last:  # the batch's mean loss = sum over micro-batches of (share of rows) x mean
            losses.append(
                clock.run("F", i, lambda out=out, yi=yi: nn.functional.mse_loss(out, yi))
                * (xi.shape[0] / x.shape[0])
            )
        else:
            sends.append(dist.isend(out.detach(), dst=rank + 1))
        inputs.append(h)
        outputs.append(out)
    for i in range(m):
        if last:
            clock.run("B", i, losses[i].backward)
        else:
            grad = torch.empty_like(outputs[i])  # dLoss/d(our output), from the rank after
            dist.recv(grad, src=rank + 1)
            clock.run("B", i, lambda i=i, grad=grad: outputs[i].backward(grad))
        if not first:
            sends.append(dist.isend(inputs[i].grad, dst=rank - 1))  # dLoss/d(our input)
    for work in sends:
        work.wait()
    if last:
        return torch.cat([o.detach() for o in outputs]), sum(loss.item() for loss in losses)
    return None, None


def overlap_fraction(per_rank_intervals: list, span: float) -> float:
    """Share of the step during which two or more ranks computed at the same time."""
    events = sorted(
        (t, +1 if edge == 0 else -1)
        for ivs in per_rank_intervals
        for _, _, s, e in ivs
        for edge, t in enumerate((s, e))
    )
    busy_ranks, last_t, both = 0, 0.0, 0.0
    for t, step in events:
        if busy_ranks >= 2:
            both += t - last_t
        busy_ranks += step
        last_t = t
    return both / span


def state_bytes(module: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of weights, gradients and optimiser state this process holds for `module`."""
    total = 0
    for q in module.parameters():
        total += q.numel() * q.element_size()
        if q.grad is not None:
            total += q.grad.numel() * q.grad.element_size()
        for value in optimizer.state[q].values():
            if torch.is_tensor(value):
                total += value.numel() * value.element_size()
    return total


def run(ctx: DemoContext, world: World) -> DemoResult:
    device = torch.device(world.device)
    p, rank = world.world_size, world.rank
    if p < 2:
        raise UsageError("this demo splits a model across ranks: run it with --nproc 2 or more")
    torch.manual_seed(ctx.seed)  # every rank builds the same initial weights...
    blocks = make_blocks(p)
    mine = my_blocks(rank, p)
    stage = Stage([blocks[i] for i in mine]).to(device)  # ...and keeps only its own layers
    reference = nn.Sequential(*copy.deepcopy(blocks)).to(device)  # unsplit, only to check
    del blocks

    batch = ctx.pick(32, 64)
    g = torch.Generator().manual_seed(ctx.seed + 1)
    x = torch.randn(batch, FEATURES, generator=g).to(device)  # (B, 16), the same on every rank
    y = (x[:, :1] * x[:, 1:2] + 0.1 * torch.randn(batch, 1, generator=g)).to(device)  # (B, 1)

    # ---- 1. the split model computes the unsplit one: output, loss, gradients -------------
    ref_out = reference(x)  # (B, 1)
    ref_loss = nn.functional.mse_loss(ref_out, y)
    ref_loss.backward()
    ref_grads = flat(q.grad for i in mine for q in reference[i].parameters())
    m_stream = 4
    checks = {}
    for m in (1, m_stream):
        stage.zero_grad()
        out, loss = train_step(stage, world, x, y, m, Clock(device))
        grad_diff = (flat(q.grad for q in stage.parameters()) - ref_grads).abs().max().item()
        out_diff = (out - ref_out).abs().max().item() if out is not None else 0.0
        loss_diff = abs(loss - ref_loss.item()) if loss is not None else 0.0
        gathered = [None] * p
        dist.all_gather_object(gathered, (grad_diff, out_diff, loss_diff))
        checks[m] = [max(column) for column in zip(*gathered, strict=True)]

    # ---- 2. each rank holds only its layers: weights, gradients, Adam state --------------
    optimizer = torch.optim.Adam(stage.parameters())
    optimizer.step()  # creates Adam's two moments for this rank's weights only
    full_optimizer = torch.optim.Adam(reference.parameters())
    full_optimizer.step()
    mine_count = sum(q.numel() for q in stage.parameters())
    full_count = sum(q.numel() for q in reference.parameters())
    per_rank_memory = [None] * p
    dist.all_gather_object(per_rank_memory, (mine, mine_count, state_bytes(stage, optimizer)))
    full_bytes = state_bytes(reference, full_optimizer)
    del reference, full_optimizer

    # ---- 3. utilisation: one batch in flight, then m micro-batches streamed --------------
    stage_forward_s = ctx.pick(0.05, 0.1)  # one stage's forward over the whole batch
    reps = ctx.pick(3, 5)
    ms = ctx.pick((1, 2, 4, 8), (1, 2, 4, 8, 16))
    hosts = [None] * p
    dist.all_gather_object(hosts, socket.gethostname())
    same_host = len(set(hosts)) == 1
    measured = {}
    clock = Clock(device)
    for m in ms:
        stage.seconds_per_sample = 0.0
        train_step(stage, world, x, y, m, clock)  # warm-up
        stage.seconds_per_sample = stage_forward_s / batch
        runs = []
        for _ in range(reps):
            stage.zero_grad()
            clock.intervals.clear()
            dist.barrier()
            start = time.perf_counter()
            train_step(stage, world, x, y, m, clock)
            per_rank = [None] * p
            dist.all_gather_object(per_rank, (start, time.perf_counter(), clock.intervals))
            span, intervals = on_one_clock(per_rank, same_host)  # until the last rank ends
            busy = [sum(e - s for _, _, s, e in ivs) for ivs in intervals]
            runs.append(
                {
                    "span": span,
                    "utilisation": [b / span for b in busy],
                    "mean": statistics.mean(b / span for b in busy),
                    "overlap": overlap_fraction(intervals, span),
                    "intervals": intervals,
                }
            )
        runs.sort(key=lambda r: r["mean"])
        measured[m] = runs[len(runs) // 2]  # the median repetition

    # ---- report ------------------------------------------------------------------------------
    def formula(m):
        return m / (m + p - 1)

    m_top = ms[-1]
    util = [measured[m]["mean"] for m in ms]
    naive = measured[1]
    grad_1, out_1, loss_1 = checks[1]
    grad_s, out_s, loss_s = checks[m_stream]
    largest_share = max(c for _, c, _ in per_rank_memory) / full_count

    result = DemoResult(
        metrics={
            "ranks": p,
            "backend": world.backend,
            "batch": batch,
            "parameters_full_model": full_count,
            "parameters_per_rank": [c for _, c, _ in per_rank_memory],
            "model_state_bytes_per_rank": [b for _, _, b in per_rank_memory],
            "model_state_bytes_one_process": full_bytes,
            "stage_forward_ms_per_batch": stage_forward_s * 1e3,
            "repetitions": reps,
            "utilisation_formula": {m: formula(m) for m in ms},
            "utilisation_measured": {m: measured[m]["mean"] for m in ms},
            "overlap_fraction": {m: measured[m]["overlap"] for m in ms},
        },
        tables=[
            Table(
                "Split model vs unsplit model (max |Δ| over ranks)",
                ["micro-batches", "output", "loss", "gradients"],
                [
                    [1, f"{out_1:.1e}", f"{loss_1:.1e}", f"{grad_1:.1e}"],
                    [m_stream, f"{out_s:.1e}", f"{loss_s:.1e}", f"{grad_s:.1e}"],
                ],
            ),
            Table(
                "What each rank holds (weights + gradients + Adam's two moments)",
                ["rank", "blocks", "parameters", "share", "model state KiB"],
                [
                    [
                        r,
                        ",".join(str(i) for i in blocks_r),
                        count,
                        f"{count / full_count:.0%}",
                        f"{nbytes / 1024:.1f}",
                    ]
                    for r, (blocks_r, count, nbytes) in enumerate(per_rank_memory)
                ]
                + [["one process", "all", full_count, "100%", f"{full_bytes / 1024:.1f}"]],
            ),
            Table(
                f"Utilisation: busy / wall time of a step, p = {p} (median of {reps})",
                ["m", "m/(m+p-1)", "measured", "per rank", "≥2 ranks busy", "step ms"],
                [
                    [
                        m,
                        f"{formula(m):.3f}",
                        f"{measured[m]['mean']:.3f}",
                        " ".join(f"{u:.2f}" for u in measured[m]["utilisation"]),
                        f"{measured[m]['overlap']:.0%}",
                        f"{measured[m]['span'] * 1e3:.0f}",
                    ]
                    for m in ms
                ],
            ),
            Table(
                "Measured timelines (F forward, B backward, . waiting)",
                ["m", "rank", "time →"],
                [
                    [m, r, timeline(measured[m]["intervals"][r], measured[m]["span"])]
                    for m in (1, m_top)
                    for r in range(p)
                ],
            ),
        ],
        curves=[
            Curve(
                "Utilisation vs micro-batches",
                "m = " + ", ".join(str(m) for m in ms),
                {"m/(m+p-1)": [formula(m) for m in ms], "measured": util},
            )
        ],
        notes=[
            "Stage work is a fixed sleep per sample (forward; twice that in backward) after the "
            "real layers, standing in for each rank's own accelerator, so that up to 4 ranks on "
            "2 cores measure the dependency chain rather than the cores being shared.",
            "Busy = time inside this rank's forward/backward computations (not its sends and "
            "receives); wall = from a common barrier until the last rank finishes, on the "
            "machine's shared monotonic clock (across machines: each rank's clock started as it "
            "leaves the barrier).",
            "Streaming here is a hand-written GPipe schedule (all forwards, then all backwards); "
            "the pipeline-parallel demo runs torch.distributed.pipelining's GPipe and 1F1B.",
        ],
    )

    fastest = min(ms, key=lambda m: measured[m]["span"])
    if fastest < m_top:
        result.notes.append(
            f"The step was fastest at m = {fastest} ({measured[fastest]['span'] * 1e3:.0f} ms), "
            f"not at m = {m_top} ({measured[m_top]['span'] * 1e3:.0f} ms): past that point the "
            "per-micro-batch overhead costs more than the shorter fill and drain save."
        )

    result.claim(
        f"Split across {p} ranks with send/recv, the model computes exactly what the unsplit "
        "model does: the same output, loss and gradients (float32 round-off), with one batch "
        f"or {m_stream} micro-batches.",
        max(checks[1] + checks[m_stream]) < 1e-5,
        f"max |Δ|: output {max(out_1, out_s):.1e}, loss {max(loss_1, loss_s):.1e}, "
        f"gradients {max(grad_1, grad_s):.1e}",
    )
    result.claim(
        "Each rank holds only its own layers: the per-rank parameter counts add up to the "
        f"model's and each holds about 1/p of them (largest share ≤ 1.5/p = {1.5 / p:.0%}), "
        "and so of their gradients and optimiser state.",
        sum(c for _, c, _ in per_rank_memory) == full_count
        and largest_share <= 1.5 / p
        and max(b for _, _, b in per_rank_memory) <= 1.5 / p * full_bytes,
        "parameters per rank "
        + ", ".join(str(c) for _, c, _ in per_rank_memory)
        + f" of {full_count} (largest {largest_share:.0%}); model state "
        + ", ".join(f"{b / 1024:.1f}" for _, _, b in per_rank_memory)
        + f" KiB vs {full_bytes / 1024:.1f} KiB in one process",
    )
    result.claim(
        f"With one batch in flight only one rank computes at a time: utilisation ≈ 1/p = "
        f"{1 / p:.2f} (±0.03), and two ranks are almost never busy together (< 2% of the step).",
        abs(naive["mean"] - 1 / p) <= 0.03 and naive["overlap"] < 0.02,
        f"utilisation per rank {' '.join(f'{u:.3f}' for u in naive['utilisation'])}, "
        f"mean {naive['mean']:.3f}; ≥2 ranks busy {naive['overlap']:.1%} of "
        f"{naive['span'] * 1e3:.0f} ms",
    )
    result.claim(
        f"Streaming micro-batches raises utilisation: at m = {m_top} the ranks work "
        "concurrently and utilisation rises by at least half of what m/(m+p-1) predicts.",
        util[-1] - util[0] >= 0.5 * (formula(m_top) - formula(1))
        and measured[m_top]["overlap"] > 0.1,
        "measured "
        + ", ".join(f"m={m}: {u:.3f}" for m, u in zip(ms, util, strict=True))
        + f"; formula {formula(1):.3f} → {formula(m_top):.3f}; ≥2 ranks busy "
        f"{measured[m_top]['overlap']:.0%} of the step at m = {m_top}",
    )
    excess = {m: measured[m]["mean"] - formula(m) for m in ms}
    result.claim(
        "m/(m+p-1) is a ceiling: the fill and drain of the pipeline cost at least that much "
        "idle time, and communication adds to it (measured ≤ formula + 0.02 for every m).",
        max(excess.values()) <= 0.02,
        "measured - formula: " + ", ".join(f"m={m}: {v:+.3f}" for m, v in excess.items()),
    )
    return result


if __name__ == "__main__":
    entry("model-parallel", run)
