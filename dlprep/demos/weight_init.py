"""Weight init: activation scale across 50 layers for N(0,1), Xavier/Glorot and He/Kaiming init.

What it shows: a layer z = W a sums fan_in products, so Var(z) = fan_in * Var(w) * E[a^2]. To
keep the scale of the signal constant through depth, Var(w) must cancel fan_in and the
activation's effect on E[a^2]:
- N(0,1) weights (Var w = 1) multiply the scale by sqrt(fan_in) per layer. With ReLU it
  explodes (x sqrt(n/2) = 11.3 per layer at width 256: ~1e52 after 50 layers, and float32
  overflows to inf around layer 36); with tanh the pre-activations are ~16x too large, so tanh
  saturates at +-1 (most units |a| > 0.99, tanh' ~ 0: no gradient flows).
- Xavier/Glorot (Var w = 2 / (fan_in + fan_out), Glorot & Bengio 2010) is derived for an
  activation that is linear with slope 1 around 0, like tanh. ReLU zeroes half its inputs,
  halving E[a^2], so with Xavier the ReLU signal's std shrinks by 1/sqrt(2) = 0.707 per layer
  (~1e-8 after 50 layers).
- He/Kaiming (Var w = 2 / fan_in, He et al. 2015, arXiv 1502.01852) puts the factor 2 back:
  ReLU activations keep their scale through depth.

What really happens:
- tanh + Xavier does not keep the scale constant either: tanh(x) < x, so the variance loses a
  little at every layer and decays like a power law, not geometrically. For small variance q,
  E[tanh(z)^2] ~ q - 2q^2, so q_l ~ 1/(2l) and the std after layer l is ~1/sqrt(2l) (0.1 after
  50 layers). The demo checks that law.
- tanh + He (gain sqrt(2)) settles at a fixed point, std ~0.55, without saturating: the
  signal neither dies nor explodes (PyTorch's recommended tanh gain, calculate_gain('tanh'),
  is 5/3).
- ReLU + He keeps the scale only on average: at finite width the log of the scale does a
  random walk, so one network's std after 50 layers (width 256) lands anywhere from ~0.2x to
  ~3x the first layer's, and the typical network ends a little smaller (median ~0.8x)
  because the mean is what is preserved (Hanin & Rolnick, "How to start training", NeurIPS
  2018: the spread grows with the sum of 1/width over the layers). tanh + Xavier's law holds
  to ~+-20% per network for the same reason.

Run: dlprep demo weight-init
"""

from __future__ import annotations

import math

import torch

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True

INITS = {  # name -> std of the weights for a square layer of width n
    "N(0,1)": lambda n: 1.0,
    "Xavier": lambda n: math.sqrt(2 / (n + n)),
    "He": lambda n: math.sqrt(2 / n),
}
ACTIVATIONS = {"tanh": torch.tanh, "ReLU": torch.relu}


def forward_stats(act, std, x: torch.Tensor, depth: int, g: torch.Generator) -> dict:
    """Push x through `depth` square layers (no biases) and record, per layer, the std of the
    activations, the fraction of saturated tanh units and the mean derivative tanh'(z)."""
    width = x.shape[1]
    h = x
    stds, saturated, mean_tanh_grad = [], [], []
    for _ in range(depth):
        w = (torch.randn(width, width, generator=g, dtype=torch.float64) * std).to(x.device)
        z = h @ w  # (B, width)
        h = act(z)
        stds.append(h.std().item())
        saturated.append((h.abs() > 0.99).double().mean().item())
        mean_tanh_grad.append((1 - torch.tanh(z) ** 2).mean().item())
    return {"std": stds, "saturated": saturated, "mean_tanh_grad": mean_tanh_grad}


def first_non_finite_layer(x: torch.Tensor, depth: int, g: torch.Generator) -> int | None:
    """ReLU with N(0,1) weights in float32: the first layer whose output holds inf or nan."""
    width = x.shape[1]
    h = x.float()
    for layer in range(1, depth + 1):
        w = torch.randn(width, width, generator=g).to(x.device)
        h = torch.relu(h @ w)
        if not torch.isfinite(h).all():
            return layer
    return None


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    depth, width, batch = 50, ctx.pick(256, 512), ctx.pick(256, 1024)
    # float64 so that the exploding run can be followed to 1e52 instead of overflowing
    x = torch.randn(batch, width, generator=g, dtype=torch.float64).to(device)  # (B, width)

    stats = {
        (act_name, init_name): forward_stats(act, std_of(width), x, depth, g)
        for act_name, act in ACTIVATIONS.items()
        for init_name, std_of in INITS.items()
    }
    factor = {  # geometric-mean change of the std per layer, layer 1 -> layer `depth`
        key: (s["std"][-1] / s["std"][0]) ** (1 / (depth - 1)) for key, s in stats.items()
    }
    overflow_layer = first_non_finite_layer(x, depth, g)

    tanh_n, tanh_x, tanh_he = (stats["tanh", k] for k in INITS)
    relu_n, relu_x, relu_he = (stats["ReLU", k] for k in INITS)
    tanh_law = tanh_x["std"][-1] * math.sqrt(2 * depth)  # 1 if std = 1/sqrt(2l)
    he_drift = relu_he["std"][-1] / relu_he["std"][0]

    result = DemoResult(
        metrics={
            "depth": depth,
            "width": width,
            **{f"{a} + {i}: std layer 1": s["std"][0] for (a, i), s in stats.items()},
            **{f"{a} + {i}: std layer {depth}": s["std"][-1] for (a, i), s in stats.items()},
            **{f"{a} + {i}: factor per layer": f for (a, i), f in factor.items()},
            "tanh + N(0,1): saturated fraction, last layer": tanh_n["saturated"][-1],
            "tanh + N(0,1): mean tanh'(z), last layer": tanh_n["mean_tanh_grad"][-1],
            "tanh + Xavier: std_L * sqrt(2L)": tanh_law,
            "ReLU + N(0,1) in float32: first non-finite layer": overflow_layer,
        },
        tables=[
            Table(
                f"Std of the activations through {depth} layers of width {width}",
                [
                    "activation + init",
                    "std layer 1",
                    f"std layer {depth}",
                    "factor per layer",
                    "expected factor",
                    f"saturated |a|>0.99, layer {depth}",
                ],
                [
                    [
                        f"{a} + {i}",
                        f"{s['std'][0]:.3g}",
                        f"{s['std'][-1]:.3g}",
                        f"{factor[a, i]:.3f}",
                        {
                            ("ReLU", "N(0,1)"): f"sqrt(n/2) = {math.sqrt(width / 2):.2f}",
                            ("ReLU", "Xavier"): "1/sqrt(2) = 0.707",
                            ("ReLU", "He"): "1",
                            ("tanh", "Xavier"): "std ~ 1/sqrt(2l)",
                        }.get((a, i), "-"),
                        f"{s['saturated'][-1]:.0%}" if a == "tanh" else "-",
                    ]
                    for (a, i), s in stats.items()
                ],
            )
        ],
        curves=[
            Curve(
                f"{act_name}: activation std per layer",
                "layer",
                {init: stats[act_name, init]["std"] for init in INITS},
                log_y=True,
            )
            for act_name in ACTIVATIONS
        ],
        notes=[
            f"tanh + Xavier: std after layer {depth} is {tanh_x['std'][-1]:.3f}; "
            f"1/sqrt(2*{depth}) = {1 / math.sqrt(2 * depth):.3f}. A power-law decay, not a "
            "geometric one.",
            f"tanh + He settles at std {tanh_he['std'][-1]:.2f} without saturating "
            f"({tanh_he['saturated'][-1]:.0%} of units at |a| > 0.99).",
            f"ReLU + He: std after {depth} layers is {he_drift:.2f}x the first layer's: kept on "
            "average, but it wanders at finite width.",
            "ReLU + N(0,1) in float32: the activations overflow to inf at layer "
            f"{overflow_layer} (float64 was used for the curves).",
        ],
    )
    result.claim(
        "He init keeps ReLU activations' scale through depth (factor ~1 per layer).",
        0.95 < factor["ReLU", "He"] < 1.05,
        f"x{factor['ReLU', 'He']:.3f} per layer; std layer {depth} / layer 1 = {he_drift:.2f}",
    )
    rx = factor["ReLU", "Xavier"]
    result.claim(
        "Xavier with ReLU shrinks the std by 1/sqrt(2) = 0.707 per layer (it ignores that ReLU "
        "zeroes half the units).",
        abs(rx / (1 / math.sqrt(2)) - 1) < 0.05,
        f"x{rx:.3f} per layer; std {relu_x['std'][0]:.2f} -> {relu_x['std'][-1]:.1e} over "
        f"{depth} layers",
    )
    rn = factor["ReLU", "N(0,1)"]
    result.claim(
        "N(0,1) weights explode ReLU activations by ~sqrt(fan_in/2) per layer; in float32 they "
        "overflow to inf.",
        abs(rn / math.sqrt(width / 2) - 1) < 0.05
        and overflow_layer is not None
        and overflow_layer < depth,
        f"x{rn:.2f} per layer (sqrt({width}/2) = {math.sqrt(width / 2):.2f}); std at layer "
        f"{depth} = {relu_n['std'][-1]:.1e}; float32 inf/nan from layer {overflow_layer}",
    )
    result.claim(
        "N(0,1) weights saturate tanh: most units sit at +-1, where tanh' ~ 0 blocks gradients.",
        tanh_n["saturated"][-1] > 0.75 and tanh_n["mean_tanh_grad"][-1] < 0.1,
        f"{tanh_n['saturated'][-1]:.0%} of units at |a| > 0.99; mean tanh'(z) "
        f"{tanh_n['mean_tanh_grad'][-1]:.3f} at layer {depth}",
    )
    result.claim(
        "tanh + Xavier neither saturates nor keeps its scale: the std decays like "
        "1/sqrt(2l) (a power law), to within 30% at the last layer.",
        abs(tanh_law - 1) < 0.3 and tanh_x["saturated"][-1] < 0.01,
        f"std at layer {depth} = {tanh_x['std'][-1]:.3f} vs 1/sqrt(2*{depth}) = "
        f"{1 / math.sqrt(2 * depth):.3f}; saturated {tanh_x['saturated'][-1]:.1%}",
    )
    return result
