"""Very deep nets at init: orthogonal weights (dynamical isometry), zero-init residual branches.

What it shows:

1. Orthogonal vs Gaussian init in a deep *linear* network (Saxe, McClelland & Ganguli 2014,
   arXiv 1312.6120). The input-output Jacobian of x -> W_L ... W_1 x is the product of the
   weight matrices. With Gaussian weights of variance 1/n ("Xavier-like": the *average*
   squared gain is 1) the product's singular values spread out exponentially with depth: a
   few directions are amplified, most are squashed towards 0, so the gradient reaches the
   lower layers only along a handful of directions. With orthogonal matrices
   (torch.nn.init.orthogonal_) every singular value of the product is exactly 1: "dynamical
   isometry". Trained by the same SGD on the same regression, the orthogonal deep linear net
   learns much faster (Saxe et al. show its learning time can be independent of depth).
2. Residual branches without normalisation. With y = x + F(x) and a He-initialised two-layer
   branch, Var(F(x)) ~ 2 Var(x), so each block multiplies the variance by ~3: after 50 blocks
   the activations are ~1e11x too large. Two fixes, measured:
   - zero-init the last layer of every branch (Fixup, Zhang, Dauphin & Ma 2019, arXiv
     1901.09321; SkipInit, De & Smith 2020, arXiv 2002.10444; in BN ResNets the same idea is
     zero-init of the last BN gamma, Goyal et al. 2017, arXiv 1706.02677): every block starts
     as the identity, yet the zeroed layer receives a non-zero gradient, so it learns;
   - Fixup's scaling: multiply the other branch weights by L^(-1/(2m-2)) (m = 2 layers per
     branch: L^(-1/2)). Measured here on its own (last layer left at He init, to see its
     effect): each block adds only 2 Var(x) / L to the variance, so the total grows by
     (1 + 2/L)^L ~ e^2, bounded, instead of 3^L. Fixup uses both at once.

What really happens beyond the textbook: a good init is not the whole story, since it only fixes
the start (this demo measures init, not training). Once the zeroed layers move, an un-normalised
residual net can still blow up at learning rates a normalised one tolerates; in a quick check
outside this demo (50-block residual MLP regression, SGD with momentum), zero-init alone diverged
within a few steps at lr 0.01 but not at 0.003, while adding Fixup's scaling kept both stable.
Fixup also adds scalar multipliers and biases and needs "proper regularization" (the authors'
words) to match normalised nets, and in practice normalisation or careful LR/warmup is still
used. Orthogonal init gives exact isometry only for *linear*
layers: with ReLU, half the units are off and no weight init can keep every singular value at 1
(Pennington, Schoenholz & Ganguli 2017, arXiv 1711.04735).

Run: dlprep demo init-at-depth
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def _deep_linear(depth: int, width: int, kind: str, device: torch.device) -> list[torch.Tensor]:
    weights = []
    for _ in range(depth):
        w = torch.empty(width, width)
        if kind == "orthogonal":
            nn.init.orthogonal_(w)
        else:
            nn.init.normal_(w, std=1 / math.sqrt(width))  # average squared gain 1
        weights.append(w.to(device).requires_grad_(True))
    return weights


def _branch(width: int, scheme: str, n_blocks: int) -> nn.Sequential:
    """A residual branch Linear -> ReLU -> Linear, He-initialised, then `scheme` applied."""
    first, last = nn.Linear(width, width, bias=False), nn.Linear(width, width, bias=False)
    nn.init.kaiming_normal_(first.weight, nonlinearity="relu")
    nn.init.kaiming_normal_(last.weight, nonlinearity="relu")
    with torch.no_grad():
        if scheme == "zero-init last layer":
            last.weight.zero_()
        if scheme == "first layer x L^-1/2":  # Fixup's rule for the non-final branch layers
            first.weight.mul_(n_blocks**-0.5)
    return nn.Sequential(first, nn.ReLU(), last)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1a. the end-to-end Jacobian of a deep linear net: its singular values -------------
    width = 64
    spectra = {}
    rows = []
    for depth in (1, 8, 32):
        for kind in ("gaussian", "orthogonal"):
            prod = torch.eye(width, dtype=torch.float64, device=device)
            for _ in range(depth):
                w = torch.randn(width, width, generator=g, dtype=torch.float64)
                if kind == "orthogonal":
                    w = torch.linalg.qr(w)[0]  # a random orthogonal matrix
                else:
                    w = w / math.sqrt(width)
                prod = w.to(device) @ prod  # (width, width): the Jacobian of the stack
            s = torch.linalg.svdvals(prod)
            within_10x = ((s > 0.1) & (s < 10)).sum().item()
            spectra[(depth, kind)] = (s.max().item(), s.min().item(), within_10x)
            rows.append([depth, kind, f"{s.max().item():.3g}", f"{s.min().item():.2e}", within_10x])
    result.tables.append(
        Table(
            f"Singular values of W_L ... W_1 (width {width}, float64)",
            ["depth L", "init", "largest", "smallest", f"# of {width} within [0.1, 10]"],
            rows,
        )
    )

    # ---- 1b. training the deep linear net: orthogonal vs Gaussian ---------------------------
    depth, width_t = 32, 32
    steps = ctx.pick(150, 600)
    target = torch.randn(width_t, width_t, generator=g) / math.sqrt(width_t)
    x = torch.randn(ctx.pick(128, 512), width_t, generator=g)  # (n, width)
    y = x @ target.T
    x, y = x.to(device), y.to(device)
    curves, final = {}, {}
    for kind in ("gaussian", "orthogonal"):
        torch.manual_seed(ctx.seed)
        weights = _deep_linear(depth, width_t, kind, device)
        opt = torch.optim.SGD(weights, lr=0.01)
        curve = []
        for step in range(steps):
            h = x  # (n, width)
            for w in weights:
                h = h @ w.T
            loss = ((h - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 10 == 0:
                curve.append(loss.item())
        curves[kind], final[kind] = curve, loss.item()
    result.curves.append(
        Curve(
            f"Training MSE of a {depth}-layer linear net (width {width_t}), SGD lr 0.01",
            "step / 10",
            curves,
            log_y=True,
        )
    )

    # ---- 2. un-normalised residual nets: activation scale through 50 blocks -----------------
    n_blocks, width_r = 50, 64
    h0 = torch.randn(256, width_r, generator=g).to(device)  # (B, width), std ~1
    schemes = ["He init", "zero-init last layer", "first layer x L^-1/2"]
    scale_rows, std_after = [], {}
    zero_grads = {}
    for scheme in schemes:
        torch.manual_seed(ctx.seed)
        blocks = [_branch(width_r, scheme, n_blocks).to(device) for _ in range(n_blocks)]
        h = h0
        stds = []
        for block in blocks:
            h = h + block(h)  # y = x + F(x), no normalisation
            stds.append(h.std().item())
        std_after[scheme] = stds
        scale_rows.append([scheme, *(f"{stds[i - 1]:.3g}" for i in (1, 10, 25, 50))])
        if scheme == "zero-init last layer":
            loss = h.pow(2).mean() + (h * torch.randn(h.shape, generator=g).to(device)).mean()
            loss.backward()
            zero_grads = {
                "last layer (zeroed)": blocks[0][2].weight.grad.norm().item(),
                "first layer": blocks[0][0].weight.grad.norm().item(),
            }
    result.tables.append(
        Table(
            f"Activation std after k residual blocks x + F(x) (width {width_r}, no "
            f"normalisation, input std {h0.std().item():.2f})",
            ["branch init", "k = 1", "k = 10", "k = 25", "k = 50"],
            scale_rows,
        )
    )

    # ---- metrics and claims ------------------------------------------------------------------
    g32, o32 = spectra[(32, "gaussian")], spectra[(32, "orthogonal")]
    g1 = spectra[(1, "gaussian")]
    result.metrics = {
        "singular_values": {f"{d}-{k}": list(v) for (d, k), v in spectra.items()},
        "deep_linear_final_mse": final,
        "residual_std_after_50": {k: v[-1] for k, v in std_after.items()},
        "zero_init_grad_norms": zero_grads,
    }
    result.claim(
        "Orthogonal init keeps every singular value of a 32-layer linear net's Jacobian at 1 "
        "(dynamical isometry).",
        abs(o32[0] - 1) < 1e-8 and abs(o32[1] - 1) < 1e-8,
        f"largest {o32[0]:.12f}, smallest {o32[1]:.12f}",
    )
    result.claim(
        "With Gaussian weights of variance 1/n the spectrum spreads with depth: at 32 layers "
        "the largest and smallest singular values differ by > 1e6 and fewer than half lie "
        "within [0.1, 10] (all or nearly all do for one layer).",
        g32[0] / g32[1] > 1e6 and g32[2] < width / 2 and g32[2] < g1[2],
        f"1 layer: {g1[2]} of {width} within [0.1, 10]; 32 layers: largest {g32[0]:.3g}, "
        f"smallest {g32[1]:.2e}, {g32[2]} within",
    )
    result.claim(
        f"Trained the same way, the orthogonally initialised {depth}-layer linear net reaches "
        "less than half the Gaussian one's loss.",
        final["orthogonal"] < 0.5 * final["gaussian"],
        f"final MSE after {steps} steps: gaussian {final['gaussian']:.3f}, orthogonal "
        f"{final['orthogonal']:.3f}",
    )
    he = std_after["He init"]
    result.claim(
        "Without normalisation, He-initialised residual branches make the activations explode "
        "(each block multiplies the variance by ~3: std > 1e6 after 50 blocks).",
        he[-1] > 1e6 and 1.4 < he[0] / h0.std().item() < 2.1,
        f"std after 1 block {he[0]:.2f}, after 50 {he[-1]:.3g}",
    )
    zero = std_after["zero-init last layer"]
    result.claim(
        "Zero-initialising each branch's last layer makes every block the identity at init "
        "(the std does not move), and that layer still gets a non-zero gradient, so it learns.",
        max(abs(v - h0.std().item()) for v in zero) < 1e-5
        and zero_grads["last layer (zeroed)"] > 0,
        f"std after 50 blocks {zero[-1]:.4f} (input {h0.std().item():.4f}); gradient norm of "
        f"the zeroed layer {zero_grads['last layer (zeroed)']:.3g}, of the first layer "
        f"{zero_grads['first layer']:.1g} (zero until the last layer moves)",
    )
    scaled = std_after["first layer x L^-1/2"]
    # each block now adds Var(F) = 2 Var(x) / L, so the variance grows by (1 + 2/L)^L ~ e^2
    predicted = (1 + 2 / n_blocks) ** (n_blocks / 2) * h0.std().item()
    result.claim(
        "Fixup's scaling of the branch (first layer x L^-1/2, the last left at He init) keeps "
        "the scale bounded: the std grows by sqrt((1 + 2/L)^L) ~ e over 50 blocks (within 15%), "
        "instead of 3^25.",
        abs(scaled[-1] / predicted - 1) < 0.15,
        f"std after 50 blocks {scaled[-1]:.3f}, predicted {predicted:.3f}",
    )
    return result
