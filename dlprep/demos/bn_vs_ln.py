"""BatchNorm vs LayerNorm: which axes each normalises, batch dependence, train/eval, batch size 1.

What it shows, each recomputed by hand (float64) and compared with torch.nn:

- Axes. BatchNorm computes one mean and variance per channel/feature, over the batch (and, for
  BatchNorm1d on (N, C, L) and BatchNorm2d on (N, C, H, W), the positions too). LayerNorm
  computes one mean and variance per sample (per token for (N, T, C)), over the feature dims
  given by `normalized_shape`. Both then apply a learned scale and shift (BatchNorm: one per
  channel; LayerNorm: one per element of `normalized_shape`). In training, BatchNorm
  normalises with the biased variance (divide by N).
- Batch dependence. A sample's BatchNorm output (training mode) changes when the *other*
  samples in the batch change; its LayerNorm output does not. This is why LayerNorm suits
  variable-length sequences, small or per-example batches and autoregressive decoding.
- Train vs eval. In training BatchNorm uses the batch's statistics and updates running
  estimates: running_mean = (1 - momentum) * running_mean + momentum * batch_mean (momentum =
  0.1 by default; note the convention is the opposite of an optimiser's momentum), and
  running_var the same with the *unbiased* batch variance (divide by N - 1). In eval it uses the
  running estimates, so its output no longer depends on the batch. LayerNorm has no running
  statistics and behaves the same in both modes.
- Batch size 1. BatchNorm in training mode with one value per channel raises ("Expected more
  than 1 value per channel when training"); with a batch of 2 every output is ±1: the statistics
  are degenerate. LayerNorm works on one sample, and so does BatchNorm in eval mode.

What really happens beyond the textbook: BatchNorm2d does *not* raise for a single image, since
each channel still has H×W values; it silently normalises per image (like InstanceNorm). And the
running statistics start at mean 0, variance 1, so after a few batches they are still far from
the data's: eval-mode outputs of a freshly trained BN layer can be badly off (measured below).

Sources: PyTorch docs for torch.nn.BatchNorm1d/BatchNorm2d/LayerNorm; Ioffe & Szegedy 2015
(arXiv 1502.03167); Ba, Kiros & Hinton 2016 (arXiv 1607.06450).

Run: dlprep demo bn-vs-ln
"""

from __future__ import annotations

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True  # one claim (the running mean after k batches) depends on the sampled data

EPS = 1e-5  # the default eps of all three modules


def normalise(x: torch.Tensor, dims: tuple[int, ...], unbiased: bool = False) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps), mean and variance taken over `dims`."""
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, correction=1 if unbiased else 0)
    return (x - mean) / torch.sqrt(var + EPS)


def randomise_affine(module: nn.Module, g: torch.Generator) -> None:
    """Non-trivial scale and shift, so the check covers the affine part too."""
    with torch.no_grad():
        module.weight.copy_(torch.randn(module.weight.shape, generator=g, dtype=torch.float64))
        module.bias.copy_(torch.randn(module.bias.shape, generator=g, dtype=torch.float64))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    f64 = torch.float64

    def randn(*shape: int, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
        return (mean + std * torch.randn(*shape, generator=g, dtype=f64)).to(device)

    # ---- 1. which axes: recompute every module by hand ---------------------------------------
    N, C, L, H, W, T = 16, 8, 5, 6, 6, 7
    cases = [  # module, input, dims it averages over, the other (wrong) dims, affine shape
        ("BatchNorm1d(C)", nn.BatchNorm1d(C), randn(N, C, mean=3, std=2), (0,), (1,), (1, C)),
        (
            "BatchNorm1d(C)",
            nn.BatchNorm1d(C),
            randn(N, C, L, mean=3, std=2),  # (N, C, L): a sequence of C-channel vectors
            (0, 2),
            (1,),
            (1, C, 1),
        ),
        (
            "BatchNorm2d(C)",
            nn.BatchNorm2d(C),
            randn(N, C, H, W, mean=3),  # (N, C, H, W) images
            (0, 2, 3),
            (1, 2, 3),
            (1, C, 1, 1),
        ),
        ("LayerNorm(C)", nn.LayerNorm(C), randn(N, T, C, mean=3, std=2), (2,), (0, 1), (C,)),
        (
            "LayerNorm([C, H, W])",
            nn.LayerNorm([C, H, W]),
            randn(N, C, H, W),
            (1, 2, 3),
            (0, 2, 3),
            (C, H, W),
        ),
    ]
    axis_rows, axis_diffs, wrong_diffs = [], [], []
    for name, module, x, dims, other, affine_shape in cases:
        module = module.to(device, f64).train()
        randomise_affine(module, g)
        weight, bias = module.weight.view(affine_shape), module.bias.view(affine_shape)
        out = module(x)
        hand = normalise(x, dims) * weight + bias
        wrong = normalise(x, other) * weight + bias  # what mixing up BN and LN would give
        axis_diffs.append(max_diff(out, hand))
        wrong_diffs.append(max_diff(out, wrong))
        pairs = x.mean(dim=dims).numel()  # how many (mean, var) pairs the module computes
        axis_rows.append(
            [
                name,
                "×".join(map(str, x.shape)),
                str(dims),
                pairs,
                f"{axis_diffs[-1]:.1e}",
                f"{wrong_diffs[-1]:.2g}",
            ]
        )

    # BatchNorm in training divides by N (biased variance): the unbiased one would differ
    bn, x = nn.BatchNorm1d(C).to(device, f64).train(), randn(N, C, mean=3, std=2)
    out = bn(x)
    biased_diff = max_diff(out, normalise(x, (0,)))
    unbiased_diff = max_diff(out, normalise(x, (0,), unbiased=True))

    # ---- 2. batch dependence -----------------------------------------------------------------
    bn, ln = nn.BatchNorm1d(C).to(device, f64).train(), nn.LayerNorm(C).to(device, f64)
    batch = randn(N, C)  # (16, 8)
    other_batch = batch.clone()
    other_batch[1:] = randn(N - 1, C, mean=1, std=3)  # same sample 0, different companions
    bn_change = max_diff(bn(batch)[0], bn(other_batch)[0])
    ln_change = max_diff(ln(batch)[0], ln(other_batch)[0])

    # ---- 3. running statistics and train vs eval ----------------------------------------------
    tracker = nn.BatchNorm1d(C).to(device, f64)  # momentum 0.1, running mean 0 and var 1 at start
    m = tracker.momentum
    running_mean = torch.zeros(C, dtype=f64, device=device)
    running_var = torch.ones(C, dtype=f64, device=device)
    biased_running_var = running_var.clone()
    steps = ctx.pick(5, 50)
    for _ in range(steps):
        xb = randn(N, C, mean=5, std=2)  # data mean 5, std 2
        tracker.train()(xb)
        running_mean = (1 - m) * running_mean + m * xb.mean(dim=0)
        running_var = (1 - m) * running_var + m * xb.var(dim=0, correction=1)  # unbiased
        biased_running_var = (1 - m) * biased_running_var + m * xb.var(dim=0, correction=0)
    mean_rule_diff = max_diff(tracker.running_mean, running_mean)
    var_rule_diff = max_diff(tracker.running_var, running_var)
    var_biased_diff = max_diff(tracker.running_var, biased_running_var)
    # eval mode: normalise with the running estimates, for every sample alike
    tracker.eval()
    test = randn(N, C, mean=5, std=2)
    eval_out = tracker(test)
    eval_hand = (test - tracker.running_mean) / torch.sqrt(tracker.running_var + EPS)
    eval_diff = max_diff(eval_out, eval_hand)
    eval_batch_change = max_diff(eval_out[0], tracker(torch.cat([test[:1], randn(N - 1, C)]))[0])
    # how far eval is from train after `steps` batches: running mean moved 1 - 0.9^steps of
    # the way from 0 towards the data mean 5
    eval_mean = eval_out.mean().item()
    running_mean_now = tracker.running_mean.mean().item()
    train_mean = tracker.train()(test).mean().item()  # (this call updates the running stats)
    expected_fraction = 1 - (1 - m) ** steps

    # ---- 4. batch size 1 and 2 -----------------------------------------------------------------
    bn, ln = nn.BatchNorm1d(C).to(device, f64), nn.LayerNorm(C).to(device, f64)
    one = randn(1, C, mean=2)  # (1, 8)
    try:
        bn.train()(one)
        bn_error = ""
    except ValueError as error:
        bn_error = str(error)
    ln_one = ln(one)
    ln_one_vs_in_batch = max_diff(ln_one[0], ln(torch.cat([one, randn(N - 1, C)]))[0])
    tracker.eval()  # the layer with running statistics from section 3
    bn_eval_one = max_diff(tracker(one)[0], tracker(torch.cat([one, randn(N - 1, C)]))[0])
    two = randn(2, C, mean=2, std=3)
    # a tiny eps (0 is refused in training) to see the bare statistics; the default eps only
    # shrinks ±1 to ±1/sqrt(1 + eps/d²), d = half the gap between the two values
    bn_two = nn.BatchNorm1d(C, eps=1e-12).to(device, f64).train()(two)  # (2, 8)
    two_off_pm1 = (bn_two.abs() - 1).abs().max().item()
    image = randn(1, C, H, W)
    bn2d_one_image = nn.BatchNorm2d(C).to(device, f64).train()(image)
    bn2d_is_per_image = max_diff(bn2d_one_image, normalise(image, (2, 3)))

    result = DemoResult(
        metrics={
            "max_diff_hand_vs_torch": max(axis_diffs),
            "min_diff_wrong_axes": min(wrong_diffs),
            "bn_train_vs_biased_var": biased_diff,
            "bn_train_vs_unbiased_var": unbiased_diff,
            "bn_output_change_when_others_change": bn_change,
            "ln_output_change_when_others_change": ln_change,
            "running_mean_rule_diff": mean_rule_diff,
            "running_var_rule_diff_unbiased": var_rule_diff,
            "running_var_rule_diff_biased": var_biased_diff,
            "eval_vs_hand_diff": eval_diff,
            "eval_output_change_when_others_change": eval_batch_change,
            "running_mean_after_steps": running_mean_now,
            "eval_output_mean": eval_mean,
            "train_output_mean": train_mean,
            "bn_batch1_error": bn_error,
            "bn_batch2_max_dist_from_pm1": two_off_pm1,
        },
        tables=[
            Table(
                "Each module recomputed by hand (float64): mean/var over the listed dims",
                [
                    "module",
                    "input",
                    "reduced dims",
                    "# of (mean, var) pairs",
                    "max |hand − torch|",
                    "same formula, other axes",
                ],
                axis_rows,
            ),
            Table(
                "Sample 0's output when the other 15 samples are replaced",
                ["module", "max |change|"],
                [
                    ["BatchNorm1d, train", f"{bn_change:.3g}"],
                    ["BatchNorm1d, eval", f"{eval_batch_change:.1e}"],
                    ["LayerNorm", f"{ln_change:.1e}"],
                ],
            ),
            Table(
                f"Running statistics after {steps} training batches (data mean 5, std 2)",
                ["check", "value"],
                [
                    ["|running_mean − hand rule|", f"{mean_rule_diff:.1e}"],
                    ["|running_var − rule with unbiased var|", f"{var_rule_diff:.1e}"],
                    ["|running_var − rule with biased var|", f"{var_biased_diff:.2g}"],
                    ["running_mean (avg over channels)", f"{running_mean_now:.3f}"],
                    ["5 × (1 − 0.9^steps)", f"{5 * expected_fraction:.3f}"],
                    ["eval output mean on new data", f"{eval_mean:.3f}"],
                    ["train output mean on the same data", f"{train_mean:.1e}"],
                ],
            ),
        ],
        notes=[
            "BatchNorm's 'momentum' weighs the NEW batch (0.1), the opposite of an optimiser's "
            "momentum; momentum=None gives a cumulative average instead.",
            f"After {steps} batches the running mean has moved 1 − 0.9^{steps} = "
            f"{expected_fraction:.0%} of the way from 0 to the data mean; the eval-mode output "
            f"mean on new data is {eval_mean:.2f} (train mode: ~0)"
            + (
                ": a BN model evaluated after too few batches is badly off (more batches, or "
                "recompute the statistics)."
                if expected_fraction < 0.9
                else ": by now the running statistics have caught up."
            ),
            f"BatchNorm2d on a single image does not raise: each channel has {H}×{W} values, "
            f"and it normalises that one image per channel like InstanceNorm (max diff "
            f"{bn2d_is_per_image:.1e}).",
        ],
    )
    result.claim(
        "BatchNorm normalises each channel over the batch (and positions); LayerNorm each "
        "sample over its features: the hand formulas match torch.nn to 1e-12 in float64.",
        max(axis_diffs) < 1e-12,
        f"max |hand − torch| = {max(axis_diffs):.1e} over {len(cases)} cases",
    )
    result.claim(
        "Normalising over the other axes gives a clearly different output (the check can fail).",
        min(wrong_diffs) > 0.1,
        f"smallest max |difference| = {min(wrong_diffs):.2g}",
    )
    result.claim(
        "In training BatchNorm normalises with the biased batch variance (÷N), not ÷(N−1).",
        biased_diff < 1e-12 and unbiased_diff > 1e-3,
        f"vs biased: {biased_diff:.1e}; vs unbiased: {unbiased_diff:.2g}",
    )
    result.claim(
        "A sample's BatchNorm output (train mode) depends on the rest of the batch; its "
        "LayerNorm output does not.",
        bn_change > 0.1 and ln_change < 1e-12,
        f"change of sample 0: BN {bn_change:.3g}, LN {ln_change:.1e}",
    )
    result.claim(
        "running_mean = (1 − 0.1)·running_mean + 0.1·batch_mean, and running_var the same "
        "with the UNBIASED batch variance.",
        mean_rule_diff < 1e-12 and var_rule_diff < 1e-12 and var_biased_diff > 1e-3,
        f"mean rule {mean_rule_diff:.1e}, unbiased var rule {var_rule_diff:.1e}, "
        f"biased var rule off by {var_biased_diff:.2g}",
    )
    result.claim(
        f"The running mean starts at 0 and after {steps} batches has moved about "
        f"1 − 0.9^{steps} = {expected_fraction:.0%} of the way to the data mean (5).",
        abs(running_mean_now - 5 * expected_fraction) < 0.3,
        f"running_mean averaged over channels {running_mean_now:.3f}, "
        f"5 × (1 − 0.9^{steps}) = {5 * expected_fraction:.3f}",
    )
    result.claim(
        "In eval mode BatchNorm uses the running statistics, so a sample's output no longer "
        "depends on the batch.",
        eval_diff < 1e-12 and eval_batch_change < 1e-12,
        f"vs hand: {eval_diff:.1e}; change with other samples: {eval_batch_change:.1e}",
    )
    result.claim(
        "Batch size 1: BatchNorm1d in training mode raises 'Expected more than 1 value per "
        "channel'; LayerNorm and eval-mode BatchNorm work and give the sample's usual output.",
        "Expected more than 1 value per channel" in bn_error
        and ln_one_vs_in_batch < 1e-12
        and bn_eval_one < 1e-12,
        f"error: {bn_error!r}; LN alone vs in a batch {ln_one_vs_in_batch:.1e}; "
        f"eval BN {bn_eval_one:.1e}",
    )
    result.claim(
        "Batch size 2: BatchNorm's training statistics are degenerate, every output is ±1 "
        "whatever the input (eps=1e-12; the default eps shrinks it slightly).",
        two_off_pm1 < 1e-4,
        f"max | |y| − 1 | = {two_off_pm1:.1e}",
    )
    return result
