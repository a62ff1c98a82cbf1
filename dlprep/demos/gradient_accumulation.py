"""Gradient accumulation: k micro-batches of B/k give the gradient of one batch of B (not with BN).

What it shows. The mean loss over a batch of B is the average of the k micro-batch means, so
calling backward() on each micro-batch loss divided by k (gradients add up in .grad) and then
stepping once gives the same gradient as one batch of B, up to float round-off (~1e-7 in
float32, ~1e-16 in float64), and therefore the same training trajectory. Activation memory
is what autograd saves for backward, and it scales with the batch that is in flight: with
accumulation its peak is that of one micro-batch (k x less), paid for with k sequential
passes.

The classic bugs: forgetting the 1/k gives k x the gradient, i.e. k x the learning rate for
SGD. (Adam divides by the gradient's running RMS, so it is almost blind to the scale: with
Adam the same bug changes the trajectory only through eps.) And BatchNorm normalises with
the statistics of the batch it sees: B/k samples per micro-batch instead of B, so the
gradient differs from the full batch's, and its running statistics get k updates instead of
one. LayerNorm normalises each sample on its own, so accumulation stays exact.

Run: dlprep demo gradient-accumulation
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = False

D_IN, HIDDEN, N_CLASSES = 16, 64, 4
BATCH, K = 64, 4  # one batch of 64 = 4 micro-batches of 16


def _mlp(norm: str = "none") -> torch.nn.Sequential:
    """Linear -> [norm] -> ReLU, twice, then a linear head."""

    def norm_layer():
        return {
            "none": torch.nn.Identity,
            "batchnorm": torch.nn.BatchNorm1d,
            "layernorm": torch.nn.LayerNorm,
        }[norm](HIDDEN)

    return torch.nn.Sequential(
        torch.nn.Linear(D_IN, HIDDEN),
        norm_layer(),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        norm_layer(),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, N_CLASSES),
    )


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def _grad_full(model, x, y) -> torch.Tensor:
    """The gradient of the mean loss over the whole batch, in one backward."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return _flat_grad(model)


def _grad_accumulated(model, x, y, k: int, divide: bool = True) -> torch.Tensor:
    """k backward passes on micro-batches of B/k; .grad sums them."""
    model.zero_grad(set_to_none=True)
    for xm, ym in zip(x.chunk(k), y.chunk(k), strict=True):  # (B/k, D), (B/k,)
        loss = F.cross_entropy(model(xm), ym)  # the mean over the micro-batch
        # equal-sized micro-batches: the mean of the k means is the batch mean
        (loss / k if divide else loss).backward()
    return _flat_grad(model)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _train(model, batches, k: int | None, optimizer: str, divide: bool = True):
    """One optimizer step per batch; k=None: the whole batch at once, else k micro-batches."""
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if optimizer == "sgd"
        else torch.optim.Adam(model.parameters(), lr=1e-2)
    )
    losses = []
    for x, y in batches:
        if k is None:
            _grad_full(model, x, y)
        else:
            _grad_accumulated(model, x, y, k, divide)
        with torch.no_grad():
            losses.append(F.cross_entropy(model(x), y).item())
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()]), losses


def _saved_activation_bytes(model, x, y) -> int:
    """Bytes autograd keeps for backward during one forward (the parameters excluded)."""
    param_ptrs = {p.data_ptr() for p in model.parameters()}
    total = 0

    def pack(t):
        nonlocal total
        if t.data_ptr() not in param_ptrs:
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    return total


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    metrics = result.metrics

    teacher = torch.randn(D_IN, N_CLASSES, generator=g)

    def make_batch(n, dtype=torch.float32):
        x = torch.randn(n, D_IN, generator=g)  # (n, 16)
        y = (x @ teacher).argmax(dim=1)  # (n,) labels from a linear teacher
        return x.to(device, dtype), y.to(device)

    x, y = make_batch(BATCH)
    base = _mlp().to(device)

    # ---- 1. the gradient: one batch of B vs k micro-batches of B/k ---------------------------
    rows = []
    diffs = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        model = copy.deepcopy(base).to(dtype)
        xd = x.to(dtype)
        full = _grad_full(model, xd, y)
        acc = _grad_accumulated(model, xd, y, K)
        diffs[name] = _rel(acc, full)
        rows.append(
            [name, f"{full.norm().item():.6f}", f"{acc.norm().item():.6f}", f"{diffs[name]:.1e}"]
        )
    model = copy.deepcopy(base)
    full = _grad_full(model, x, y)
    no_div = _grad_accumulated(model, x, y, K, divide=False)
    ratio = (no_div.norm() / full.norm()).item()
    cos = F.cosine_similarity(no_div, full, dim=0).item()
    rows.append(
        [
            "float32, 1/k forgotten",
            f"{full.norm().item():.6f}",
            f"{no_div.norm().item():.6f}",
            f"{_rel(no_div, full):.1e}",
        ]
    )
    metrics.update(
        rel_diff_float32=diffs["float32"],
        rel_diff_float64=diffs["float64"],
        forgot_1_over_k_norm_ratio=ratio,
    )
    result.tables.append(
        Table(
            f"Gradient of one batch of {BATCH} vs {K} accumulated micro-batches of {BATCH // K}",
            ["precision", "‖full-batch grad‖", "‖accumulated grad‖", "relative difference"],
            rows,
        )
    )
    result.claim(
        f"Accumulating {K} micro-batch gradients (each loss divided by k) reproduces the "
        "full-batch gradient to float round-off: ~1e-7 in float32, ~1e-16 in float64.",
        diffs["float32"] < 1e-6 and diffs["float64"] < 1e-14,
        f"relative difference: float32 {diffs['float32']:.1e}, float64 {diffs['float64']:.1e}",
    )
    result.claim(
        f"Forgetting the 1/k gives exactly k x the gradient (k = {K}), same direction.",
        abs(ratio - K) < 1e-4 and cos > 1 - 1e-6,
        f"‖accumulated‖ / ‖full‖ = {ratio:.6f}, cosine {cos:.7f}",
    )

    # ---- 2. the training trajectory ---------------------------------------------------------
    steps = ctx.pick(20, 60)
    batches64 = [make_batch(BATCH, torch.float64) for _ in range(steps)]
    traj = {}
    for optimizer in ("sgd", "adam"):
        for label, k, divide in (("full", None, True), ("accum", K, True), ("no 1/k", K, False)):
            model = copy.deepcopy(base).double()
            traj[optimizer, label] = _train(model, batches64, k, optimizer, divide)
    start = torch.cat([p.detach().flatten().double() for p in base.parameters()])
    distance = {}  # (optimizer, run) -> distance to the full-batch run's final weights
    for optimizer in ("sgd", "adam"):
        ref, _ = traj[optimizer, "full"]
        moved = (ref - start).norm()  # how far the full-batch run travelled
        for label in ("accum", "no 1/k"):
            params, _ = traj[optimizer, label]
            distance[optimizer, label] = ((params - ref).norm() / moved).item()
    sgd_acc, adam_acc = distance["sgd", "accum"], distance["adam", "accum"]
    sgd_bug, adam_bug = distance["sgd", "no 1/k"], distance["adam", "no 1/k"]
    metrics.update(
        sgd_accumulated_distance=sgd_acc,
        adam_accumulated_distance=adam_acc,
        sgd_no_1_over_k_distance=sgd_bug,
        adam_no_1_over_k_distance=adam_bug,
    )
    traj_rows = [[opt, label, f"{d:.1e}"] for (opt, label), d in distance.items()]
    result.tables.append(
        Table(
            f"After {steps} steps (float64): distance to the full-batch run's weights, "
            "relative to how far that run moved",
            ["optimizer", "run", "relative distance"],
            traj_rows,
        )
    )
    result.curves.append(
        Curve(
            "Training loss, SGD with momentum (float64)",
            "step",
            {
                "full batch": traj["sgd", "full"][1],
                f"{K} micro-batches": traj["sgd", "accum"][1],
                "1/k forgotten": traj["sgd", "no 1/k"][1],
            },
        )
    )
    result.claim(
        "Same gradients, same trajectory: after training with SGD or Adam, accumulation ends "
        "at the full-batch run's weights (float64, to 1e-10).",
        sgd_acc < 1e-10 and adam_acc < 1e-10,
        f"relative distance: SGD {sgd_acc:.1e}, Adam {adam_acc:.1e} after {steps} steps",
    )
    result.claim(
        "Forgetting 1/k multiplies SGD's learning rate by k and sends it elsewhere; Adam, which "
        "divides by the gradient's RMS, barely notices (10x+ smaller deviation).",
        sgd_bug > 0.1 and adam_bug < sgd_bug / 10,
        f"relative distance to the correct run: SGD {sgd_bug:.2f}, Adam {adam_bug:.1e}",
    )

    # ---- 3. BatchNorm breaks the equivalence, LayerNorm does not ----------------------------
    norm_rows = []
    for norm in ("batchnorm", "layernorm"):
        one_batch = _mlp(norm).to(device).train()
        micro = copy.deepcopy(one_batch)  # same weights, same (fresh) running statistics
        full = _grad_full(one_batch, x, y)
        acc = _grad_accumulated(micro, x, y, K)
        metrics[f"{norm}_rel_diff"] = _rel(acc, full)
        if norm == "batchnorm":
            # running_mean after one full batch (one update) vs k micro-batches (k updates)
            metrics["batchnorm_running_mean_rel_diff"] = _rel(
                micro[1].running_mean, one_batch[1].running_mean
            )
        norm_rows.append([norm, f"{_rel(acc, full):.1e}"])
    result.tables.append(
        Table(
            "Gradient: one batch vs accumulated micro-batches, with normalisation layers",
            ["layer", "relative difference"],
            norm_rows,
        )
    )
    bn, ln = metrics["batchnorm_rel_diff"], metrics["layernorm_rel_diff"]
    result.claim(
        "With BatchNorm, accumulation is not the same as the big batch: each micro-batch is "
        "normalised with its own statistics (16 samples, not 64), and the gradient differs by "
        "far more than round-off (over 1%). LayerNorm (per sample) stays exact.",
        bn > 1e-2 and ln < 1e-6,
        f"relative gradient difference: BatchNorm {bn:.1e}, LayerNorm {ln:.1e}; BatchNorm's "
        f"running_mean after 1 vs {K} updates differs by "
        f"{metrics['batchnorm_running_mean_rel_diff']:.0%}",
    )

    # ---- 4. memory: what is saved for backward scales with the micro-batch ------------------
    model = copy.deepcopy(base)
    saved_full = _saved_activation_bytes(model, x, y)
    saved_micro = _saved_activation_bytes(model, x[: BATCH // K], y[: BATCH // K])
    mem_ratio = saved_full / saved_micro
    metrics.update(saved_bytes_full=saved_full, saved_bytes_micro=saved_micro)
    mem_rows = [
        ["activations saved for backward (counted)", saved_full, saved_micro, f"{mem_ratio:.2f}"]
    ]
    result.claim(
        f"The activations saved for backward scale with the batch in flight: a micro-batch of "
        f"B/k keeps k x less ({K}x here) than the full batch.",
        abs(mem_ratio - K) < 0.05 * K,
        f"saved for backward: batch {saved_full} B, micro-batch {saved_micro} B "
        f"(ratio {mem_ratio:.2f})",
    )
    if device.type == "cuda":
        # A wider net and a bigger batch, so that activations dominate the peak.
        big = torch.nn.Sequential(
            torch.nn.Linear(256, 2048),
            torch.nn.ReLU(),
            torch.nn.Linear(2048, 2048),
            torch.nn.ReLU(),
            torch.nn.Linear(2048, 2048),
            torch.nn.ReLU(),
            torch.nn.Linear(2048, 10),
        ).to(device)
        xb = torch.randn(8192, 256, device=device)
        yb = torch.randint(0, 10, (8192,), device=device)

        def peak(k: int) -> int:
            _grad_accumulated(big, xb, yb, k)  # warm-up: .grad buffers exist
            torch.cuda.synchronize()
            baseline = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            _grad_accumulated(big, xb, yb, k)
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated(device) - baseline

        peak_full, peak_micro = peak(1), peak(K)
        metrics.update(cuda_peak_bytes_full=peak_full, cuda_peak_bytes_micro=peak_micro)
        mem_rows.append(
            [
                "CUDA peak above baseline (max_memory_allocated, batch 8192)",
                peak_full,
                peak_micro,
                f"{peak_full / peak_micro:.2f}",
            ]
        )
        result.claim(
            "On the GPU, the peak memory of forward + backward (torch.cuda.max_memory_allocated"
            f") drops by more than k/2 with k = {K} micro-batches.",
            peak_full / peak_micro > K / 2,
            f"peak above baseline: {peak_full / 2**20:.0f} MiB vs {peak_micro / 2**20:.0f} MiB",
        )
    result.tables.append(
        Table(
            "Memory: full batch vs one micro-batch",
            ["what", "full batch", "micro-batch", "ratio"],
            mem_rows,
        )
    )
    result.notes.append(
        "Dividing by k assumes equal-sized micro-batches. With unequal ones (a short last "
        "batch, or a per-token loss over sequences of different lengths) sum each micro-batch's "
        "loss and divide by the total count over all k, or the big micro-batches are "
        "under-weighted."
    )
    result.notes.append(
        "Accumulation trades memory for time: the same number of forward/backward FLOPs, but "
        "in k sequential passes of a smaller batch, which uses the hardware less well. In "
        "distributed training, skip the all-reduce on the first k-1 micro-batches "
        "(DistributedDataParallel.no_sync())."
    )
    return result
