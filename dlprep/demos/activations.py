"""Activation functions measured: derivatives, saturation, GELU/SiLU's shape, depth, softmax T.

What it shows:

- The derivatives written in closed form match autograd (float64): sigmoid' = s (1 - s),
  tanh' = 1 - tanh^2, ReLU' = 1[x > 0], LeakyReLU' = 1 or 0.01, ELU' = 1 or alpha e^x,
  GELU' = Phi(x) + x phi(x) (GELU = x Phi(x), Phi the standard normal CDF),
  SiLU' = s(x) (1 + x (1 - s(x))) (SiLU = Swish-1 = x s(x)).
- Saturation: sigmoid' peaks at 0.25 (at 0) and tanh' at 1 (tanh(x) = 2 s(2x) - 1); both fall
  off exponentially, so for pre-activations spread like N(0, 3^2) a large share of units
  have a derivative below 0.01. ReLU never saturates on the positive side (derivative
  exactly 1), but its derivative is exactly 0 on the negative half: half of the units pass
  no gradient for a given input.
- GELU and SiLU are smooth and NON-monotonic: they dip below zero (GELU's minimum is about
  -0.17 near x = -0.75, SiLU's about -0.28 near x = -1.28) and return to 0 as x -> -inf.
  The tanh approximation of GELU (used by the original BERT/GPT-2 code, `approximate='tanh'`
  in PyTorch) is within 1e-3 of the exact one.
- Depth: a 6-layer MLP (width 32; Xavier init for sigmoid/tanh, He init for the rest) fits
  a smooth target with each activation, by SGD with momentum and by Adam, learning rates
  picked from a small grid. The ReLU, GELU and SiLU nets fit it well; with SGD the sigmoid
  net barely moves (the others end at least 5x lower, often over 100x). What really
  happens with Adam: one might expect a per-parameter adaptive step to undo the sigmoid's
  small gradients. It helps only slowly: after 100 steps (quick mode) the sigmoid net has
  barely moved under Adam either; after 600 (full mode) it is down to between a few
  percent and about a third of its starting loss, depending on the seed (seeds 0 and 3),
  still far (over 10x) behind the ReLU family. The deep sigmoid net's trouble
  is not only the gradient's scale: its outputs are all positive (centred on 0.5, not 0)
  and each layer squashes its input into sigmoid's narrow range, so the forward signal
  loses the differences between examples layer by layer and training starts on a long
  plateau. tanh (zero-centred, derivative 1 at 0) trains well, especially with Adam.
- Softmax temperature: softmax(z / T) keeps the argmax for every T > 0; its entropy rises with
  T, from nearly one-hot (T = 0.1) to nearly uniform (T = 100).

Run: dlprep demo activations
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

SQRT2 = math.sqrt(2.0)


def _phi(x: torch.Tensor) -> torch.Tensor:  # standard normal density
    return torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)


def _Phi(x: torch.Tensor) -> torch.Tensor:  # standard normal CDF
    return 0.5 * (1 + torch.erf(x / SQRT2))


# name -> (function, closed-form derivative)
ACTIVATIONS = {
    "sigmoid": (torch.sigmoid, lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x))),
    "tanh": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
    "ReLU": (torch.relu, lambda x: (x > 0).to(x.dtype)),
    "LeakyReLU": (
        F.leaky_relu,
        lambda x: torch.where(x > 0, 1.0, 0.01 * torch.ones_like(x)),
    ),
    "ELU": (F.elu, lambda x: torch.where(x > 0, torch.ones_like(x), torch.exp(x))),
    "GELU": (F.gelu, lambda x: _Phi(x) + x * _phi(x)),
    "SiLU": (F.silu, lambda x: torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x)))),
}
MODULES = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "ReLU": nn.ReLU, "GELU": nn.GELU,
           "SiLU": nn.SiLU}  # fmt: skip


def _deep_mlp(act: str, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(10, width), MODULES[act]()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), MODULES[act]()]
    layers.append(nn.Linear(width, 1))
    for layer in layers:  # the init each activation is meant to have: Xavier or He
        if isinstance(layer, nn.Linear):
            if act in ("sigmoid", "tanh"):
                nn.init.xavier_normal_(layer.weight)
            else:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def _train(act, opt_name, lr, x, y, steps, init_seed, depth, width) -> tuple[float, float]:
    torch.manual_seed(init_seed)  # the same initial weights for every learning rate
    model = _deep_mlp(act, width, depth).to(x.device)
    with torch.no_grad():
        start = F.mse_loss(model(x), y).item()
    if opt_name == "SGD":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.mse_loss(model(x), y)  # full batch
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = F.mse_loss(model(x), y).item()
    return start, end if math.isfinite(end) else float("inf")


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. derivatives: closed form vs autograd, float64 ------------------------------------
    grid = torch.linspace(-8, 8, 4001, dtype=torch.float64, device=device)
    grid = grid[grid.abs() > 1e-9]  # skip x = 0, where ReLU-type kinks have no derivative
    rows, max_err, derivs = [], 0.0, {}
    x3 = (3 * torch.randn(100_000, generator=g, dtype=torch.float64)).to(device)  # N(0, 3^2)
    for name, (f, df) in ACTIVATIONS.items():
        x = grid.clone().requires_grad_()
        (auto,) = torch.autograd.grad(f(x).sum(), x)
        err = (auto - df(grid)).abs().max().item()
        max_err = max(max_err, err)
        d = df(grid)
        derivs[name] = d
        small = (df(x3).abs() < 0.01).to(torch.float64).mean().item()
        zero = (df(x3) == 0).to(torch.float64).mean().item()
        at5 = df(torch.tensor(5.0, dtype=torch.float64)).item()
        rows.append([name, f"{err:.1e}", f"{d.max().item():.4f}", f"{at5:.2e}", f"{small:.3f}",
                     f"{zero:.3f}"])  # fmt: skip
    result.tables.append(
        Table(
            "Derivatives on [-8, 8] (float64) and at pre-activations x ~ N(0, 3^2)",
            [
                "activation",
                "max |closed form - autograd|",
                "max f'",
                "f'(5)",
                "share f' < 0.01",
                "share f' == 0",
            ],
            rows,
        )  # fmt: skip
    )
    sig_max = derivs["sigmoid"].max().item()
    tanh_max = derivs["tanh"].max().item()
    sat = {r[0]: float(r[4]) for r in rows}
    zeros = {r[0]: float(r[5]) for r in rows}

    # ---- 2. GELU and SiLU: non-monotonic, and the tanh approximation --------------------------
    fine = torch.linspace(-6, 6, 120_001, dtype=torch.float64, device=device)
    gelu, silu = F.gelu(fine), F.silu(fine)
    gelu_min, gelu_arg = gelu.min().item(), fine[gelu.argmin()].item()
    silu_min, silu_arg = silu.min().item(), fine[silu.argmin()].item()
    tanh_approx_err = (F.gelu(fine, approximate="tanh") - gelu).abs().max().item()
    sigmoid_approx_err = (fine * torch.sigmoid(1.702 * fine) - gelu).abs().max().item()
    result.tables.append(
        Table(
            "GELU = x Phi(x) and SiLU = x sigmoid(x) on [-6, 6]",
            ["quantity", "value"],
            [
                ["GELU minimum (at x)", f"{gelu_min:.4f} (x = {gelu_arg:.3f})"],
                ["SiLU minimum (at x)", f"{silu_min:.4f} (x = {silu_arg:.3f})"],
                ["max |GELU tanh approximation - exact|", f"{tanh_approx_err:.1e}"],
                ["max |x sigmoid(1.702 x) - GELU|", f"{sigmoid_approx_err:.1e}"],
            ],
        )
    )

    # ---- 3. depth: a 6-layer MLP fitting a smooth random target, SGD and Adam ----------------
    depth, width, n = 6, 32, 256
    steps = ctx.pick(100, 600)
    x = torch.randn(n, 10, generator=g).to(device)  # (256, 10)
    teacher_w = torch.randn(10, 1, generator=g).to(device)
    y = torch.sin(x @ teacher_w) + 0.5 * torch.tanh(x[:, :1] * x[:, 1:2])  # (256, 1)
    y = (y - y.mean()) / y.std()
    grids = {"SGD": [0.01, 0.03, 0.1], "Adam": [3e-3]}
    acts = ["sigmoid", "tanh", "ReLU", "GELU", "SiLU"]
    train_rows, ratio = [], {}
    for act in acts:
        row = [act]
        for opt_name, lrs in grids.items():
            runs = [
                _train(act, opt_name, lr, x, y, steps, 1000 + ctx.seed, depth, width) for lr in lrs
            ]
            start = runs[0][0]
            best_end, best_lr = min((r[1], lr) for r, lr in zip(runs, lrs, strict=True))
            ratio[(act, opt_name)] = best_end / start
            row += [f"{best_end / start:.3f} (lr {best_lr:g})"]
        train_rows.append(row)
    result.tables.append(
        Table(
            f"{depth}-layer MLP (width {width}), {steps} full-batch steps: final / initial MSE, "
            "best LR on the grid",
            ["activation", "SGD (momentum 0.9)", "Adam"],
            train_rows,
        )
    )

    # ---- 4. softmax temperature -----------------------------------------------------------------
    order = torch.randperm(10, generator=g)
    z = torch.linspace(-3, 3, 10, dtype=torch.float64)[order].to(device)  # 10 logits
    temps = [0.1, 0.5, 1.0, 2.0, 10.0, 100.0]
    ents, maxp, same_argmax = [], [], True
    for t in temps:
        p = torch.softmax(z / t, dim=0)
        ents.append(-(p * p.log()).sum().item())
        maxp.append(p.max().item())
        same_argmax &= bool(p.argmax() == z.argmax())
    result.tables.append(
        Table(
            "softmax(z / T) for 10 logits evenly spaced in [-3, 3]",
            ["T", "entropy (nats)", "max probability"],
            [[t, f"{e:.3f}", f"{m:.3f}"] for t, e, m in zip(temps, ents, maxp, strict=True)],
        )
    )

    result.metrics = {
        "max_derivative_error": max_err,
        "sigmoid_max_derivative": sig_max,
        "tanh_max_derivative": tanh_max,
        "share_derivative_below_0.01": sat,
        "share_derivative_zero": zeros,
        "gelu_min": gelu_min,
        "silu_min": silu_min,
        "gelu_tanh_approx_max_error": tanh_approx_err,
        "final_over_initial_mse": {f"{a} {o}": v for (a, o), v in ratio.items()},
        "softmax_entropy_by_T": ents,
    }

    result.claim(
        "The closed-form derivatives (sigmoid' = s(1-s), tanh' = 1-tanh^2, GELU' = Phi + x phi, "
        "SiLU' = s(1 + x(1-s)), ...) match autograd to round-off.",
        max_err < 1e-10,
        f"max |difference| over 7 activations = {max_err:.1e}",
    )
    result.claim(
        "sigmoid' is at most 0.25 and tanh' at most 1 (both at x = 0); both saturate: for "
        "x ~ N(0, 3^2) over 10% of sigmoid units and over 25% of tanh units have f' < 0.01.",
        abs(sig_max - 0.25) < 1e-4 and abs(tanh_max - 1) < 1e-4
        and sat["sigmoid"] > 0.1 and sat["tanh"] > 0.25,
        f"max sigmoid' {sig_max:.4f}, max tanh' {tanh_max:.4f}; share < 0.01: sigmoid "
        f"{sat['sigmoid']:.3f}, tanh {sat['tanh']:.3f}",
    )  # fmt: skip
    result.claim(
        "ReLU's derivative is exactly 1 or exactly 0: half the inputs pass no gradient at all; "
        "LeakyReLU, ELU, GELU and SiLU never give exactly 0 on this range.",
        abs(zeros["ReLU"] - 0.5) < 0.01
        and all(zeros[a] == 0 for a in ("LeakyReLU", "ELU", "GELU", "SiLU")),
        f"share f' == 0: ReLU {zeros['ReLU']:.3f}, others "
        + ", ".join(f"{a} {zeros[a]:.3f}" for a in ("LeakyReLU", "ELU", "GELU", "SiLU")),
    )
    result.claim(
        "GELU and SiLU are non-monotonic: they dip below 0 (GELU to about -0.17 near x = -0.75, "
        "SiLU to about -0.28 near x = -1.28); GELU's tanh approximation is within 1e-3.",
        abs(gelu_min + 0.170) < 0.002 and abs(gelu_arg + 0.752) < 0.01
        and abs(silu_min + 0.278) < 0.002 and abs(silu_arg + 1.278) < 0.01
        and tanh_approx_err < 1e-3,
        f"GELU min {gelu_min:.4f} at {gelu_arg:.3f}; SiLU min {silu_min:.4f} at {silu_arg:.3f}; "
        f"tanh approximation error {tanh_approx_err:.1e}",
    )  # fmt: skip
    family = ("ReLU", "GELU", "SiLU")
    worst = {o: max(ratio[(a, o)] for a in family) for o in ("SGD", "Adam")}
    sig = {o: ratio[("sigmoid", o)] for o in ("SGD", "Adam")}
    result.claim(
        f"SGD: the {depth}-layer sigmoid net stays above 0.3x its starting loss, while ReLU, "
        "GELU and SiLU nets get at least 5x lower than it.",
        sig["SGD"] > 0.3 and worst["SGD"] < 0.2 * sig["SGD"],
        f"final/initial MSE: sigmoid {sig['SGD']:.3f}, worst of ReLU/GELU/SiLU "
        f"{worst['SGD']:.4f}, tanh {ratio[('tanh', 'SGD')]:.3f}",
    )
    result.claim(
        "Adam: after the same number of steps the sigmoid net is still at least 10x behind "
        "ReLU, GELU and SiLU (per-parameter step sizes do not remove its handicap).",
        worst["Adam"] < 0.1 * sig["Adam"],
        f"final/initial MSE: sigmoid {sig['Adam']:.3f}, worst of ReLU/GELU/SiLU "
        f"{worst['Adam']:.4f}, tanh {ratio[('tanh', 'Adam')]:.3f}",
    )
    monotone = all(a < b for a, b in zip(ents, ents[1:], strict=False))
    result.claim(
        "Softmax temperature keeps the argmax; entropy rises with T, from nearly one-hot "
        "(T = 0.1: max p > 0.95) to nearly uniform (T = 100: entropy > 0.99 ln 10).",
        same_argmax and monotone and maxp[0] > 0.95 and ents[-1] > 0.99 * math.log(10),
        f"entropies {[round(e, 3) for e in ents]} (ln 10 = {math.log(10):.3f}); max p at "
        f"T = 0.1: {maxp[0]:.3f}",
    )
    return result
