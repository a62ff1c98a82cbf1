"""Dead ReLUs: units that output 0 for every input get zero gradient and stop learning for good.

What it shows: a ReLU unit max(0, w.x + b) whose pre-activation is negative for every training
input outputs 0 everywhere, so the gradient of the loss w.r.t. its incoming weights, its bias
and its outgoing weights is exactly 0 on every batch. Gradient descent can never move it
again: it is "dead". A too-high learning rate is the usual killer (one big step throws the
weights or the bias far into the negative region); a large negative bias shift kills units
directly.

Two experiments on a small regression MLP:
1. Learning rate. Adam at its default 1e-3 vs a high 3e-2 on a 10-64-64-1 ReLU MLP: count
   the units whose output is 0 on the whole training set, per layer, and check that exactly
   those units get an all-zero gradient. LeakyReLU (slope 0.01 for z < 0, PyTorch's default)
   at the same high rate: its gradient is never 0, so no unit is gradient-dead.
2. Negative bias shift, plain SGD (no momentum, no weight decay), one hidden layer: subtract a
   constant from the hidden biases so that most units are dead from step 0, then train. The
   dead units' incoming and outgoing weights do not change by a single bit, and none comes
   back: their inputs (the data) are fixed, so their pre-activations never change.

What really happens:
- The second layer dies far more easily than the first: its inputs are ReLU outputs, all
  >= 0, so a unit whose weights have all been pushed negative is dead for every input. A
  first-layer unit reads zero-centred data and dies only if the whole data cloud lies on the
  negative side of its hyperplane.
- Many dead units need not wreck the loss: in the short (--quick, 400-step) run the 3e-2 run,
  with most second-layer units dead, usually still ends below the 1e-3 run (the target is easy
  and a few units suffice); given 2,000 steps the 1e-3 run, almost all units alive, ends ~3x lower.
  Dead units are wasted capacity, not necessarily a broken model.
- LeakyReLU does not stop units being pushed into the negative region (at the high rate about
  as many are "inactive" as with ReLU); it keeps their gradient non-zero, 1% of the normal
  one with slope 0.01, so they can come back, but slowly. With slope 0.2 many more of the
  shifted units return in the same number of steps.
- With Adam (momentum), a unit that has just died still moves for a while on its momentum;
  with plain SGD its weights freeze at once. Either way it never receives a gradient again.
- Deeper units can in principle revive when the layers below them change; first-layer units
  (fixed inputs) cannot. "Dead" is relative to the training data: a new input may still
  switch a unit on.

Sources: CS231n notes ("as much as 40% of your network can be dead" with a too-high learning
rate); Maas et al. 2013 (Leaky ReLU); PyTorch docs for torch.nn.LeakyReLU (negative_slope 0.01).

Run: dlprep demo dead-relu
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def make_data(g: torch.Generator, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, d, generator=g)  # (N, d), zero-centred inputs
    u = torch.randn(d, 2, generator=g) / math.sqrt(d)
    y = torch.sin(2 * x @ u[:, :1]) + (x @ u[:, 1:]) ** 2  # (N, 1): a smooth non-linear target
    return x, y


def make_mlp(widths: list[int], activation) -> nn.Sequential:
    layers = []
    for fan_in, fan_out in zip(widths[:-2], widths[1:-1], strict=True):
        layers += [nn.Linear(fan_in, fan_out), activation()]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def hidden_pre_activations(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every activation layer: one (N, width) tensor per hidden layer."""
    out, h = [], x
    for module in model:
        if isinstance(module, (nn.ReLU, nn.LeakyReLU)):
            out.append(h)
        h = module(h)
    return out


@torch.no_grad()
def inactive_units(model: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Per hidden layer, a bool mask of the units with pre-activation <= 0 on EVERY input.
    For ReLU these output 0 everywhere: dead."""
    return [(z <= 0).all(dim=0) for z in hidden_pre_activations(model, x)]


def zero_gradient_units(model: nn.Sequential, x, y) -> list[torch.Tensor]:
    """Per hidden layer, the units whose incoming weights and bias get exactly 0 gradient on
    the full training set."""
    model.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    linears = [m for m in model if isinstance(m, nn.Linear)][:-1]  # the hidden layers
    return [(m.weight.grad.abs().sum(1) + m.bias.grad.abs()) == 0 for m in linears]


def train(model, x, y, opt, steps: int, batch: int, g, checkpoint_every: int = 0):
    """Mini-batch MSE training. Returns the full-data loss curve at checkpoints and, per
    hidden layer, the units that were inactive at any checkpoint."""
    losses, ever_inactive = [], None
    for step in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g).to(x.device)
        loss = ((model(x[idx]) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if checkpoint_every and (step + 1) % checkpoint_every == 0:
            with torch.no_grad():
                losses.append(((model(x) - y) ** 2).mean().item())
            masks = inactive_units(model, x)
            ever_inactive = (
                masks
                if ever_inactive is None
                else [a | b for a, b in zip(ever_inactive, masks, strict=True)]
            )
    return losses, ever_inactive


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    n, d, width, batch = 1024, 10, 64, 32
    x, y = make_data(g, n, d)
    x, y = x.to(device), y.to(device)  # (N, d), (N, 1)

    # ---- 1. learning rate: Adam 1e-3 vs 3e-2, ReLU vs LeakyReLU ----------------------------
    steps1 = ctx.pick(400, 2000)
    every = steps1 // 20
    runs = {
        "ReLU, lr 1e-3": (nn.ReLU, 1e-3),
        "ReLU, lr 3e-2": (nn.ReLU, 3e-2),
        "LeakyReLU(0.01), lr 3e-2": (nn.LeakyReLU, 3e-2),
    }
    lr_results, curves = {}, {}
    for name, (activation, lr) in runs.items():
        torch.manual_seed(ctx.seed)  # same initial weights for every run
        model = make_mlp([d, width, width, 1], activation).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        losses, ever = train(model, x, y, opt, steps1, batch, g, checkpoint_every=every)
        inactive = inactive_units(model, x)
        zero_grad = zero_gradient_units(model, x, y)
        with torch.no_grad():
            final_loss = ((model(x) - y) ** 2).mean().item()
        curves[name] = losses
        lr_results[name] = {
            "inactive": [m.float().mean().item() for m in inactive],
            "zero_grad": [m.float().mean().item() for m in zero_grad],
            "zero_grad_equals_inactive": all(
                torch.equal(a, b) for a, b in zip(inactive, zero_grad, strict=True)
            ),
            # was inactive at some checkpoint, active at the end
            "revived": [int((e & ~m).sum()) for e, m in zip(ever, inactive, strict=True)],
            "loss": final_loss,
        }

    # ---- 2. negative bias shift, plain SGD, one hidden layer --------------------------------
    steps2 = ctx.pick(500, 3000)
    shift = 2.0  # subtracted from every hidden bias: most units start dead
    shift_runs = {
        "ReLU": lambda: nn.ReLU(),
        "LeakyReLU(0.01)": lambda: nn.LeakyReLU(0.01),
        "LeakyReLU(0.2)": lambda: nn.LeakyReLU(0.2),
    }
    shift_results = {}
    for name, activation in shift_runs.items():
        torch.manual_seed(ctx.seed)
        model = make_mlp([d, width, 1], activation).to(device)
        with torch.no_grad():
            model[0].bias -= shift
        start = [p.detach().clone() for p in model.parameters()]  # W1, b1, W2, b2
        (dead0,) = inactive_units(model, x)  # (width,) bool
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        train(model, x, y, opt, steps2, batch, g)
        (dead_end,) = inactive_units(model, x)
        w1, b1, w2, _ = (p.detach() - p0 for p, p0 in zip(model.parameters(), start, strict=True))
        # per hidden unit: the largest change of anything attached to it
        change = (
            torch.stack([w1.abs().max(1).values, b1.abs(), w2.abs().max(0).values]).max(0).values
        )  # (width,)
        with torch.no_grad():
            final_loss = ((model(x) - y) ** 2).mean().item()
        shift_results[name] = {
            "dead_at_start": dead0.float().mean().item(),
            "dead_at_end": dead_end.float().mean().item(),
            "revived": int((dead0 & ~dead_end).sum()),
            "n_dead_at_start": int(dead0.sum()),
            "max_change_dead": change[dead0].max().item() if dead0.any() else float("nan"),
            "min_change_dead": change[dead0].min().item() if dead0.any() else float("nan"),
            "min_change_alive": change[~dead0].min().item() if (~dead0).any() else float("nan"),
            "loss": final_loss,
        }

    lo, hi = lr_results["ReLU, lr 1e-3"], lr_results["ReLU, lr 3e-2"]
    leaky = lr_results["LeakyReLU(0.01), lr 3e-2"]
    sr, sl01, sl2 = (shift_results[k] for k in shift_runs)
    result = DemoResult(
        metrics={
            **{
                f"{name}: {key} (layer 1, 2)": r[key]
                for name, r in lr_results.items()
                for key in ("inactive", "zero_grad", "revived")
            },
            **{f"{name}: final MSE": r["loss"] for name, r in lr_results.items()},
            "bias_shift": shift,
            **{
                f"shift, {name}: {key}": r[key]
                for name, r in shift_results.items()
                for key in (
                    "dead_at_start",
                    "dead_at_end",
                    "revived",
                    "min_change_dead",
                    "max_change_dead",
                    "min_change_alive",
                    "loss",
                )
            },
        },
        tables=[
            Table(
                f"1. Adam, 10-64-64-1 MLP, {steps1} steps: units silent on all {n} inputs",
                [
                    "run",
                    "layer 1 inactive",
                    "layer 2 inactive",
                    "zero-gradient units (l1/l2)",
                    "revived (l1/l2)",
                    "final MSE",
                ],
                [
                    [
                        name,
                        f"{r['inactive'][0]:.0%}",
                        f"{r['inactive'][1]:.0%}",
                        f"{r['zero_grad'][0]:.0%} / {r['zero_grad'][1]:.0%}",
                        f"{r['revived'][0]} / {r['revived'][1]}",
                        f"{r['loss']:.3f}",
                    ]
                    for name, r in lr_results.items()
                ],
            ),
            Table(
                f"2. Hidden biases shifted by -{shift}, plain SGD, 10-64-1 MLP, {steps2} steps",
                [
                    "activation",
                    "inactive at start",
                    "inactive at end",
                    "revived",
                    "weight change of units inactive at start (min … max)",
                    "min change, live units",
                    "final MSE",
                ],
                [
                    [
                        name,
                        f"{r['dead_at_start']:.0%}",
                        f"{r['dead_at_end']:.0%}",
                        f"{r['revived']} of {r['n_dead_at_start']}",
                        f"{r['min_change_dead']:.1e} … {r['max_change_dead']:.1e}",
                        f"{r['min_change_alive']:.1e}",
                        f"{r['loss']:.3f}",
                    ]
                    for name, r in shift_results.items()
                ],
            ),
        ],
        curves=[
            Curve("1. Full-data MSE during training", f"every {every} steps", curves, log_y=True)
        ],
        notes=[
            "Layer 2 dies far more than layer 1: its inputs are ReLU outputs (>= 0), so weights "
            "pushed negative silence it for every input; layer 1 reads zero-centred data.",
            "LeakyReLU units are pushed into the negative region about as often "
            f"({leaky['inactive'][1]:.0%} of layer 2 vs {hi['inactive'][1]:.0%} with ReLU), "
            "but keep a gradient, so none is stuck for good (coming back is slow: see table 2).",
            f"Dead units need not wreck the loss: the lr 3e-2 run ends at MSE {hi['loss']:.3f} "
            f"vs {lo['loss']:.3f} at 1e-3 (same steps). The target is easy and a few units "
            "suffice; the dead ones are wasted capacity.",
            f"LeakyReLU(0.01) revives few shifted units in {steps2} steps "
            f"({sl01['revived']} of {sl01['n_dead_at_start']}): its gradient is 1% of ReLU's. "
            f"LeakyReLU(0.2): {sl2['revived']} of {sl2['n_dead_at_start']}.",
        ],
    )
    result.claim(
        "A high learning rate kills ReLU units: far more are dead after Adam at 3e-2 (30x "
        "its default) than at 1e-3, mostly in the second layer.",
        hi["inactive"][1] >= 0.5
        and lo["inactive"][1] <= 0.2
        and hi["inactive"][1] > 2 * lo["inactive"][1]
        and hi["inactive"][1] > hi["inactive"][0],
        f"dead in layer 2: {hi['inactive'][1]:.0%} at lr 3e-2 vs {lo['inactive'][1]:.0%} at "
        f"1e-3; layer 1: {hi['inactive'][0]:.0%} vs {lo['inactive'][0]:.0%}",
    )
    result.claim(
        "A dead ReLU unit's gradient is exactly 0 on the whole training set, and the units with "
        "zero gradient are exactly the dead ones.",
        lo["zero_grad_equals_inactive"] and hi["zero_grad_equals_inactive"],
        f"zero-gradient units in layer 2: {hi['zero_grad'][1]:.0%} (dead: "
        f"{hi['inactive'][1]:.0%}) at lr 3e-2",
    )
    result.claim(
        "LeakyReLU has no gradient-dead units: its gradient is never 0, even when the unit is "
        "inactive on every input.",
        max(leaky["zero_grad"]) == 0 and max(leaky["inactive"]) > 0,
        f"zero-gradient units {leaky['zero_grad'][0]:.0%} / {leaky['zero_grad'][1]:.0%}; "
        f"inactive (z <= 0 everywhere) {leaky['inactive'][0]:.0%} / {leaky['inactive'][1]:.0%}",
    )
    result.claim(
        "A negative bias shift kills ReLU units, and with plain SGD their weights (in, out and "
        "bias) do not change by a single bit while every live unit's do.",
        sr["dead_at_start"] >= 0.3 and sr["max_change_dead"] == 0 and sr["min_change_alive"] > 0,
        f"{sr['dead_at_start']:.0%} dead at start; max change of a dead unit's weights "
        f"{sr['max_change_dead']:.1e}; min change of a live unit's {sr['min_change_alive']:.1e}",
    )
    result.claim(
        "Dead first-layer ReLU units never come back (their inputs, the data, are fixed).",
        sr["revived"] == 0 and sr["dead_at_end"] >= sr["dead_at_start"],
        f"revived {sr['revived']} of {sr['n_dead_at_start']}; dead {sr['dead_at_start']:.0%} -> "
        f"{sr['dead_at_end']:.0%}",
    )
    result.claim(
        "With LeakyReLU the same shifted units keep learning (every one's weights change), and "
        "with slope 0.2 some come back to life, which no ReLU unit does.",
        sl01["min_change_dead"] > 0 and sl2["min_change_dead"] > 0 and sl2["revived"] >= 1,
        f"min change of an inactive unit: {sl01['min_change_dead']:.1e} (0.01), "
        f"{sl2['min_change_dead']:.1e} (0.2); revived {sl01['revived']} of "
        f"{sl01['n_dead_at_start']} (0.01), {sl2['revived']} of {sl2['n_dead_at_start']} (0.2)",
    )
    return result
