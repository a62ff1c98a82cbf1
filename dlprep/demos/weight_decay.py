"""L2 regularisation vs decoupled weight decay: the same for SGD, different for Adam (AdamW).

What it shows, measured:

- L2 regularisation adds lambda/2 ||w||^2 to the loss, so the gradient gains lambda w. With
  plain SGD the update is w <- w - lr (g + lambda w) = (1 - lr lambda) w - lr g: exactly
  "decoupled" weight decay that shrinks the weights by a factor (1 - lr lambda) each step and
  then takes the gradient step. The demo trains three ways (penalty in the loss,
  torch.optim.SGD(weight_decay=lambda), and an explicit w *= 1 - lr lambda) and gets the same
  weights to round-off. The correspondence: L2 coefficient lambda <-> decay factor lr * lambda
  per step, which is also how torch.optim.AdamW applies its weight_decay
  (p <- p (1 - lr weight_decay)). (With momentum, L2 and decoupled decay already differ a
  little: the lambda w term goes through the momentum buffer.)
- With Adam they differ. torch.optim.Adam(weight_decay=lambda) is L2 (coupled, with the
  default decoupled_weight_decay=False; True makes it AdamW): it adds
  lambda w to the gradient *before* the adaptive scaling, so the decay is divided by
  sqrt(v) like everything else; the demo checks it gives the same weights as Adam on
  loss + lambda/2 ||w||^2. torch.optim.AdamW decouples it (Loshchilov & Hutter 2019,
  "Decoupled Weight Decay Regularization", arXiv 1711.05101): w <- w - lr lambda w, outside
  the adaptive step.
- Per-weight effective decay, measured on weights that see only zero-mean gradient noise of
  very different sizes (so any shrinkage is the decay's doing): with AdamW every weight
  shrinks at the same rate lr lambda per step, whatever its gradient scale. With Adam + L2 the
  decay of weight i is about lr lambda w_i / sqrt(v_i): weights with a large gradient history
  are hardly decayed, and weights with tiny gradients are decayed *much faster* than lr lambda
  (their update becomes ~lr sign(w), a constant-size step towards zero); the two agree only
  where sqrt(v) happens to be ~1. That is the paper's point: L2 in Adam is not the
  regulariser one thinks it is.

Run: dlprep demo weight-decay
"""

from __future__ import annotations

import math

import torch

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def _regression(g: torch.Generator, device: torch.device):
    x = torch.randn(256, 20, generator=g, dtype=torch.float64)  # (N, 20)
    w_true = torch.randn(20, 1, generator=g, dtype=torch.float64)
    y = x @ w_true + 0.5 * torch.randn(256, 1, generator=g, dtype=torch.float64)  # (N, 1)
    return x.to(device), y.to(device)


def _train(x, y, w0, make_opt, penalty: float, manual_decay: float, steps: int):
    """Full-batch training of a linear model; returns the final weights.

    penalty: lambda in loss + lambda/2 ||w||^2.  manual_decay: w *= (1 - manual_decay) before
    each optimizer step (decoupled decay done by hand).
    """
    w = w0.clone().requires_grad_()
    opt = make_opt([w])
    for _ in range(steps):
        loss = ((x @ w - y) ** 2).mean() + penalty / 2 * (w**2).sum()
        opt.zero_grad()
        loss.backward()
        if manual_decay:
            with torch.no_grad():
                w.mul_(1 - manual_decay)
        opt.step()
    return w.detach()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    lr, lam = 0.05, 0.1
    steps = ctx.pick(200, 1000)

    # ---- 1. with plain SGD: L2 in the loss == SGD(weight_decay) == explicit decay ----------
    x, y = _regression(g, device)
    w0 = torch.randn(20, 1, generator=g, dtype=torch.float64).to(device)
    sgd = lambda wd: lambda p: torch.optim.SGD(p, lr=lr, weight_decay=wd)  # noqa: E731
    w_penalty = _train(x, y, w0, sgd(0.0), lam, 0.0, steps)
    w_sgd_wd = _train(x, y, w0, sgd(lam), 0.0, 0.0, steps)
    w_manual = _train(x, y, w0, sgd(0.0), 0.0, lr * lam, steps)
    w_none = _train(x, y, w0, sgd(0.0), 0.0, 0.0, steps)
    sgd_diff = max(
        (w_penalty - w_sgd_wd).abs().max().item(), (w_penalty - w_manual).abs().max().item()
    )
    sgd_effect = (w_penalty - w_none).abs().max().item()  # decay did change the weights

    # ---- 2. with Adam: Adam(weight_decay) == L2 in the loss != AdamW -------------------------
    adam = lambda wd: lambda p: torch.optim.Adam(p, lr=lr, weight_decay=wd)  # noqa: E731
    adamw = lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=lam)  # noqa: E731
    a_penalty = _train(x, y, w0, adam(0.0), lam, 0.0, steps)
    a_adam_wd = _train(x, y, w0, adam(lam), 0.0, 0.0, steps)
    a_adamw = _train(x, y, w0, adamw, 0.0, 0.0, steps)
    a_manual = _train(x, y, w0, adam(0.0), 0.0, lr * lam, steps)  # decoupled by hand
    adam_l2_same = (a_penalty - a_adam_wd).abs().max().item()
    adamw_manual_same = (a_adamw - a_manual).abs().max().item()
    adam_vs_adamw = (a_adam_wd - a_adamw).abs().max().item()
    result.tables.append(
        Table(
            f"Linear regression, {steps} full-batch steps, lr = {lr}, lambda = {lam}: "
            "max |difference| between final weights",
            ["comparison", "max |w_a - w_b|"],
            [
                [
                    "SGD: penalty in loss vs SGD(weight_decay) vs w *= 1 - lr*lambda",
                    f"{sgd_diff:.1e}",
                ],
                ["SGD: with decay vs without (decay matters)", f"{sgd_effect:.3f}"],
                ["Adam: penalty in loss vs Adam(weight_decay)", f"{adam_l2_same:.1e}"],
                ["AdamW vs Adam + (w *= 1 - lr*lambda by hand)", f"{adamw_manual_same:.1e}"],
                ["Adam(weight_decay) vs AdamW(weight_decay)", f"{adam_vs_adamw:.3f}"],
            ],
        )
    )

    # ---- 3. per-weight effective decay under pure gradient noise -----------------------------
    # d weights, each with its own gradient-noise scale s_i (0.001 .. 10); the loss gradient
    # has mean zero, so in expectation only the decay moves the weights. R replicas average
    # the noise out.
    scales = torch.tensor([0.001, 0.01, 0.1, 1.0, 10.0], dtype=torch.float64)
    reps = ctx.pick(1000, 4000)
    lr3, lam3 = 0.01, 0.1  # decoupled decay lr*lambda = 1e-3 per step: half-life ~693 steps
    t3 = ctx.pick(1500, 3000)
    noise_seed = int(torch.randint(0, 2**31, (1,), generator=g))
    trajectories = {}
    for name in ("AdamW", "Adam + L2"):
        w = torch.ones(reps, len(scales), dtype=torch.float64, device=device, requires_grad=True)
        if name == "AdamW":
            opt = torch.optim.AdamW([w], lr=lr3, weight_decay=lam3)
        else:
            opt = torch.optim.Adam([w], lr=lr3, weight_decay=lam3)  # coupled: L2
        traj = []
        gn = torch.Generator().manual_seed(noise_seed)  # the same noise for both optimizers
        for _ in range(t3):
            # the loss gradient: pure zero-mean noise, (R, d), of scale s_i in column i
            noise = torch.randn(reps, len(scales), generator=gn, dtype=torch.float64) * scales
            w.grad = noise.to(device)
            opt.step()
            traj.append(w.detach().mean(0))  # (d,) average over replicas
        trajectories[name] = torch.stack(traj)  # (T, d)
    pure_half_life = math.log(2) / -math.log(1 - lr3 * lam3)  # exponential decay, ~693 steps

    def half_life(name: str, i: int) -> int | None:
        """First step at which the mean weight falls below 1/2 (None: not within T)."""
        below = torch.nonzero(trajectories[name][:, i] < 0.5).flatten()
        return int(below[0]) + 1 if len(below) else None

    halves = {name: [half_life(name, i) for i in range(len(scales))] for name in trajectories}

    def show(h):
        return h if h is not None else f">{t3}"

    rows = [
        [
            f"{s:g}",
            show(halves["AdamW"][i]),
            f"{trajectories['AdamW'][-1, i].item():.3f}",
            show(halves["Adam + L2"][i]),
            f"{trajectories['Adam + L2'][-1, i].item():.3f}",
        ]
        for i, s in enumerate(scales.tolist())
    ]
    result.tables.append(
        Table(
            f"Weights starting at 1 under pure gradient noise, lr = {lr3}, weight_decay = "
            f"{lam3} (pure decay halves them in {pure_half_life:.0f} steps); mean over {reps} "
            "replicas",
            [
                "gradient noise scale",
                "AdamW: steps to halve",
                f"AdamW: w at {t3}",
                "Adam+L2: steps to halve",
                f"Adam+L2: w at {t3}",
            ],
            rows,
        )
    )
    result.curves.append(
        Curve(
            "Mean weight over steps (start 1): AdamW decays every weight alike; Adam + L2 "
            "depends on the gradient scale",
            "step",
            {
                f"{'AdamW' if name == 'AdamW' else 'Adam+L2'} s={s:g}": trajectories[name][
                    :, i
                ].tolist()
                for name in ("AdamW", "Adam + L2")
                for i, s in enumerate(scales.tolist())
                if s in (0.001, 1.0, 10.0)
            },
        )
    )

    # ---- metrics and claims ----------------------------------------------------------------
    result.metrics = {
        "sgd_max_diff": sgd_diff,
        "adam_penalty_vs_adam_weight_decay": adam_l2_same,
        "adamw_vs_manual_decoupled": adamw_manual_same,
        "adam_l2_vs_adamw": adam_vs_adamw,
        "noise_scales": scales.tolist(),
        "adamw_steps_to_halve": halves["AdamW"],
        "adam_l2_steps_to_halve": halves["Adam + L2"],
        "pure_decay_steps_to_halve": pure_half_life,
    }
    result.claim(
        "With plain SGD, L2 in the loss, SGD(weight_decay) and decoupled w *= 1 - lr*lambda "
        "give the same weights (float64 round-off), and the decay does change them.",
        sgd_diff < 1e-12 and sgd_effect > 1e-3,
        f"max difference {sgd_diff:.1e}; vs no decay {sgd_effect:.3f}",
    )
    result.claim(
        "torch.optim.Adam(weight_decay) is L2 (same weights as the penalty in the loss); AdamW "
        "is Adam plus w *= 1 - lr*lambda; and the two end in different places.",
        adam_l2_same < 1e-10 and adamw_manual_same < 1e-10 and adam_vs_adamw > 1e-2,
        f"Adam(wd) vs penalty {adam_l2_same:.1e}; AdamW vs by hand {adamw_manual_same:.1e}; "
        f"Adam(wd) vs AdamW {adam_vs_adamw:.3f}",
    )
    hw, hl = halves["AdamW"], halves["Adam + L2"]
    result.claim(
        "AdamW decays every weight at lr*lambda per step whatever its gradient scale: each "
        "halves within 10% of the pure-decay half-life.",
        all(h is not None and abs(h / pure_half_life - 1) <= 0.1 for h in hw),
        f"AdamW steps to halve per noise scale: {[show(h) for h in hw]} "
        f"(pure decay {pure_half_life:.0f})",
    )
    big, small = hl[-1], hl[0]
    result.claim(
        "Adam + L2 divides the decay by sqrt(v): the weight with the largest gradients takes "
        ">= 2x longer to halve than under AdamW, the one with the smallest >= 5x less.",
        (big is None or big >= 2 * pure_half_life)
        and small is not None
        and small * 5 <= pure_half_life,
        f"Adam+L2 steps to halve per noise scale {[f'{s:g}' for s in scales.tolist()]}: "
        f"{[show(h) for h in hl]}",
    )
    result.notes.append(
        "For the tiny-gradient weights Adam + L2's update is ~lr * sign(w): a constant step of "
        "size lr towards zero, not an exponential decay, which is why they halve in ~0.5 / lr "
        "steps. Whether decoupling improves generalisation is the paper's empirical claim; "
        "this demo only measures the mechanics."
    )
    return result
