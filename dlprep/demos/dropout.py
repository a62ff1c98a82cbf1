"""Dropout as PyTorch does it (inverted: scale by 1/(1-p) in training), and what it buys.

What it shows, measured:

- torch.nn.Dropout(p) is *inverted* dropout. In training mode each element is zeroed with
  probability p and every survivor is multiplied by 1/(1 - p), so the expected activation is
  unchanged; in eval mode (`model.eval()`) it is the identity: nothing to rescale at test time.
  (The original paper, Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural
  Networks from Overfitting", JMLR, kept survivors unscaled in training and multiplied the
  outgoing weights by the keep probability 1 - p at test time: the same expectation. Notes that
  say frameworks scale the weights at test time describe that original scheme, not PyTorch;
  see the torch.nn.Dropout docs: "outputs are scaled by a factor of 1/(1-p) during training".)
- For the next *linear* layer the two schemes give exactly the same expected output, which is
  what eval mode returns. After a nonlinearity, eval mode is only an approximation of the
  average over masks (the "weight scaling inference rule"); the demo measures the difference.
- A small over-parameterised MLP (two hidden layers of 128) fit to 100 noisy points, on a few
  independent data sets: without dropout the training loss goes to ~0 and the validation loss
  ends high; with dropout (p = 0.3) the train/validation gap shrinks and the final validation
  loss is lower (here by 15-30%). What really happens at this scale: most of that gain is
  against *over-training*. Compared with the best validation loss each net reached along the
  way (what early stopping would keep), dropout's edge is much smaller (5-15%), and on a
  single data set it sometimes does not help at all: which is why the demo averages several.
- MC dropout (Gal & Ghahramani 2016): keep dropout on at test time and average many passes; the
  spread of the predictions is larger far from the training data than near it.

Run: dlprep demo dropout
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def _mlp(d_in: int, hidden: int, p: float) -> nn.Sequential:
    def drop() -> nn.Module:  # (p = 0: skip the no-op Dropout, whose RNG call costs time)
        return nn.Dropout(p) if p > 0 else nn.Identity()

    return nn.Sequential(
        nn.Linear(d_in, hidden), nn.ReLU(), drop(),
        nn.Linear(hidden, hidden), nn.ReLU(), drop(),
        nn.Linear(hidden, 1),
    )  # fmt: skip


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. the mechanics of nn.Dropout -----------------------------------------------------
    p = 0.3
    drop = nn.Dropout(p)
    x = (torch.rand(1000, 1000, generator=g) + 0.5).to(device)  # (1000, 1000), all > 0
    drop.train()
    y = drop(x)
    zeroed = (y == 0).to(torch.float64).mean().item()
    kept = y != 0
    scale_err = (y[kept] - x[kept] / (1 - p)).abs().max().item()
    # the mean of many dropped-out copies matches the input's mean
    n_el = x.numel()
    mean_ratio = y.to(torch.float64).mean().item() / x.to(torch.float64).mean().item()
    # std of that ratio if the expectation is preserved: sqrt(p / (1 - p) / n) (roughly)
    mean_tol = 5 * math.sqrt(p / (1 - p) / n_el) * 1.2
    drop.eval()
    y_eval = drop(x)
    eval_identity = torch.equal(y_eval, x)

    # the next linear layer: averaged over masks, W (m * h) / (1 - p) (inverted dropout in
    # training) should equal W h (what eval mode computes). The original scheme computes
    # W (m * h) in training and (1 - p) W h at test: the same relation, scaled by 1 - p.
    h = torch.rand(64, generator=g).to(device)  # (64,) an activation vector
    w = torch.randn(8, 64, generator=g).to(device)  # (8, 64) the next layer's weights
    masks = (torch.rand(20000, 64, generator=g) >= p).to(device, torch.float32)  # (M, 64)
    inverted = ((masks * h) / (1 - p)) @ w.T  # (M, 8)
    exact = w @ h  # (8,): what eval mode feeds the next layer
    se = inverted.std(0) / math.sqrt(masks.shape[0])  # (8,) standard error of the mean
    inv_z = ((inverted.mean(0) - exact).abs() / se).max().item()

    result.tables.append(
        Table(
            f"nn.Dropout(p={p}) on a 1000x1000 tensor",
            ["quantity", "measured", "expected"],
            [
                ["fraction zeroed (train)", f"{zeroed:.4f}", p],
                ["max |survivor - x / (1-p)|", f"{scale_err:.1e}", 0],
                ["mean(out) / mean(x) (train)", f"{mean_ratio:.4f}", 1],
                ["eval mode output == input", eval_identity, True],
                ["E over masks of W (m*h) / (1-p) vs W h (max z)", f"{inv_z:.2f}", "< 4"],
            ],
        )
    )

    # ---- 2. overfitting small noisy data sets, with and without dropout --------------------
    # one data set is a coin flip (some are easy to fit without over-training), so the demo
    # repeats the experiment on a few independent data sets and compares the averages
    d_in, hidden, n_train, noise = 5, 128, 100, 0.3
    n_sets = ctx.pick(3, 5)
    steps = ctx.pick(500, 2000)
    every = 20
    rates = [0.0, 0.3]
    runs: dict[float, list[dict]] = {rate: [] for rate in rates}
    for k in range(n_sets):
        w1 = torch.randn(d_in, 1, generator=g) / d_in**0.5
        w2 = torch.randn(d_in, 1, generator=g) / d_in**0.5

        def target(v, w1=w1, w2=w2):  # a smooth function of two projections
            return torch.tanh(2 * v @ w1) + 0.5 * torch.sin(3 * v @ w2)

        x_tr = torch.randn(n_train, d_in, generator=g)  # (100, 5)
        y_tr = target(x_tr) + noise * torch.randn(n_train, 1, generator=g)  # (100, 1)
        x_va = torch.randn(2000, d_in, generator=g)
        y_va = target(x_va) + noise * torch.randn(2000, 1, generator=g)
        x_tr, y_tr, x_va, y_va = (t.to(device) for t in (x_tr, y_tr, x_va, y_va))
        for rate in rates:
            torch.manual_seed(ctx.seed * 100 + k)  # the same initial weights for both rates
            model = _mlp(d_in, hidden, rate).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
            val_curve, train_curve = [], []
            for step in range(1, steps + 1):
                model.train()  # dropout on
                loss = ((model(x_tr) - y_tr) ** 2).mean()  # full batch
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step % every == 0:
                    model.eval()  # dropout off: the deterministic network
                    with torch.no_grad():
                        val_curve.append(((model(x_va) - y_va) ** 2).mean().item())
                        train_curve.append(((model(x_tr) - y_tr) ** 2).mean().item())
            runs[rate].append({"model": model, "val": val_curve, "train": train_curve})

    def avg(rate, key, pick):
        return sum(pick(r[key]) for r in runs[rate]) / n_sets

    final = {rate: {key: avg(rate, key, lambda c: c[-1]) for key in ("train", "val")}
             for rate in rates}  # fmt: skip
    best = {rate: avg(rate, "val", min) for rate in rates}
    rows = [
        [
            f"set {k + 1}",
            *(f"{runs[rate][k][key][-1]:.4f}" for rate in rates for key in ("train", "val")),
            *(f"{min(runs[rate][k]['val']):.4f}" for rate in rates),
        ]
        for k in range(n_sets)
    ]
    rows.append(
        ["mean"]
        + [f"{final[rate][key]:.4f}" for rate in rates for key in ("train", "val")]
        + [f"{best[rate]:.4f}" for rate in rates]
    )
    result.tables.append(
        Table(
            f"MLP {d_in}-{hidden}-{hidden}-1 on {n_train} noisy points (noise variance "
            f"{noise**2:.2f}), {steps} full-batch Adam steps; MSE in eval mode",
            [
                "data set",
                "train p=0",
                "val p=0",
                "train p=0.3",
                "val p=0.3",
                "best val p=0",
                "best val p=0.3",
            ],
            rows,
        )
    )
    result.curves.append(
        Curve(
            f"Validation MSE every {every} steps (data set 1)",
            "step",
            {f"p = {rate}": runs[rate][0]["val"] for rate in rates},
        )
    )

    # ---- 3. eval mode vs the average over masks, and MC dropout -----------------------------
    model = runs[0.3][-1]["model"]  # trained on the last data set, whose x_va this is
    model.train()  # dropout on at test time: each pass samples a new sub-network
    x_far = 3 * torch.randn(2000, d_in, generator=g).to(device)  # far from the training data
    with torch.no_grad():
        passes = ctx.pick(50, 200)
        mc_in = torch.stack([model(x_va) for _ in range(passes)])  # (T, 2000, 1)
        mc_far = torch.stack([model(x_far) for _ in range(passes)])
        model.eval()
        det_in = model(x_va)  # (2000, 1)
    std_in = mc_in.std(0).mean().item()
    std_far = mc_far.std(0).mean().item()
    mc_vs_eval = ((mc_in.mean(0) - det_in).abs().mean() / det_in.abs().mean()).item()

    # ---- metrics and claims ----------------------------------------------------------------
    gap0 = final[0.0]["val"] - final[0.0]["train"]
    gap3 = final[0.3]["val"] - final[0.3]["train"]
    result.metrics = {
        "fraction_zeroed": zeroed,
        "max_survivor_scale_error": scale_err,
        "mean_ratio_train": mean_ratio,
        "eval_is_identity": eval_identity,
        "mean_final_val": {str(r): final[r]["val"] for r in rates},
        "mean_final_train": {str(r): final[r]["train"] for r in rates},
        "mean_best_val": {str(r): best[r] for r in rates},
        "mc_dropout_std_in_distribution": std_in,
        "mc_dropout_std_far": std_far,
        "mc_mean_vs_eval_relative_difference": mc_vs_eval,
    }
    sd_frac = math.sqrt(p * (1 - p) / n_el)
    result.claim(
        "In training, nn.Dropout(p) zeroes a fraction p of the elements (within 5 standard "
        "errors) and scales every survivor by exactly 1/(1-p).",
        abs(zeroed - p) <= 5 * sd_frac and scale_err <= 1e-5,
        f"zeroed {zeroed:.4f} (p = {p}, s.e. {sd_frac:.1e}); max survivor error {scale_err:.1e}",
    )
    result.claim(
        "So the expected activation is unchanged, and in eval mode dropout is the identity.",
        abs(mean_ratio - 1) <= mean_tol and eval_identity,
        f"mean ratio {mean_ratio:.4f} (tolerance {mean_tol:.4f}); eval output == input: "
        f"{eval_identity}",
    )
    result.claim(
        "Averaged over masks, the next linear layer sees the same input as in eval mode "
        "(inverted dropout; the original scheme is the same with a test-time factor 1 - p).",
        inv_z < 4,
        f"max z-score of E[W (m*h) / (1-p)] - W h over 8 outputs, 20000 masks: {inv_z:.2f}",
    )
    f0, f3 = final[0.0], final[0.3]
    result.claim(
        "Without dropout the net interpolates the noisy points (mean train MSE < 0.01); dropout "
        "p = 0.3 shrinks the train/val gap and ends with a lower validation loss (<= 0.95x, "
        f"mean over {n_sets} data sets).",
        f0["train"] < 0.01 and gap3 < gap0 and f3["val"] <= 0.95 * f0["val"],
        f"p=0: train {f0['train']:.4f}, val {f0['val']:.4f} (gap {gap0:.4f}); p=0.3: train "
        f"{f3['train']:.4f}, val {f3['val']:.4f} (gap {gap3:.4f})",
    )
    gain_final = f0["val"] - f3["val"]
    gain_best = best[0.0] - best[0.3]
    result.claim(
        "Part of that gain is against over-training: compared with the best validation loss "
        "each net reached along the way (what early stopping keeps), dropout's edge is smaller.",
        gain_best < gain_final,
        f"mean val gain of dropout: at the end {gain_final:.4f}, at the best step "
        f"{gain_best:.4f} (best val p=0 {best[0.0]:.4f}, p=0.3 {best[0.3]:.4f})",
    )
    result.claim(
        "MC dropout: the spread of predictions over dropout masks is larger far from the "
        "training data (inputs 3x wider) than near it (>= 1.5x).",
        std_far >= 1.5 * std_in,
        f"mean predictive std: near {std_in:.4f}, far {std_far:.4f} ({passes} passes)",
    )
    result.notes.append(
        f"After the ReLU layers, eval mode is not exactly the average over masks: here the "
        f"MC average differs from the eval-mode prediction by {100 * mc_vs_eval:.1f}% on "
        "average (the weight-scaling rule is exact only for a linear layer)."
    )
    return result
