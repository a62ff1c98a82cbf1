"""A RealNVP normalizing flow on 2-D data: exact inverse, cheap exact log-det, exact likelihood.

What it shows (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP",
arXiv 1605.08803; Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling
and Inference", arXiv 1912.02762):
- Change of variables. A flow is an invertible map f from data x to a latent z = f(x) with
  a simple density p_Z = N(0, I); then log p_X(x) = log p_Z(f(x)) + log |det df/dx|. Training
  maximises this exact log-likelihood; sampling runs the inverse, x = f^{-1}(z).
- Affine coupling layers make both cheap. Split x = (x_a, x_b); keep x_a, and set
  z_b = x_b * exp(s(x_a)) + t(x_a), with s and t any neural networks. The inverse is
  x_b = (z_b - t(x_a)) * exp(-s(x_a)), with no need to invert s or t. The Jacobian is
  triangular, so log |det| = sum s(x_a): no O(d^3) determinant. Alternate which half is kept.
- Measured: f^{-1}(f(x)) = x to float64 round-off; the coupling's log-det equals the log |det|
  of the full Jacobian computed by autograd; the learned density integrates to 1 over a grid
  (it is a proper density, unlike an energy-based model's unnormalised score); and the
  held-out log-likelihood beats the best Gaussian (the best any affine flow can do).

What really happens:
- The data here are two moons, which a flow has to stretch a Gaussian into. A flow is a
  continuous bijection, so it cannot cut the Gaussian into two separate pieces: some
  probability mass always remains on a thin bridge between the moons. More layers make that
  bridge thinner, never absent. A note reports the share of samples that land off the data
  (about 10% in the quick run); in a check over seeds 0 and 1 about half of those lay
  between the two moons (the bridge), the rest in a spread around the moons that the short
  training leaves too wide.

Run: dlprep demo normalizing-flow
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True

HIDDEN = 32


def two_moons(n: int, g: torch.Generator, noise: float = 0.08) -> torch.Tensor:
    """n points (n, 2) on two interleaved half circles, standardised-ish."""
    upper = torch.rand(n, generator=g) < 0.5
    angle = torch.rand(n, generator=g) * math.pi
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    pts = torch.stack([x, y], dim=1) + noise * torch.randn(n, 2, generator=g)
    return (pts - torch.tensor([0.5, 0.25])) / torch.tensor([0.9, 0.5])  # (n, 2)


class Coupling(nn.Module):
    """Affine coupling: keeps coordinate `keep`, transforms the other one."""

    def __init__(self, keep: int):
        super().__init__()
        self.keep = keep
        self.net = nn.Sequential(
            nn.Linear(1, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
            nn.Linear(HIDDEN, 2),
        )  # fmt: skip
        nn.init.zeros_(self.net[-1].weight)  # start as the identity map
        nn.init.zeros_(self.net[-1].bias)

    def params(self, x_keep: torch.Tensor):
        s, t = self.net(x_keep).chunk(2, dim=1)  # (B, 1) each
        return torch.tanh(s), t  # a bounded log-scale keeps training stable

    def forward(self, x: torch.Tensor):
        """x -> z, and log |det dz/dx| per sample (B,)."""
        k, o = self.keep, 1 - self.keep
        s, t = self.params(x[:, k : k + 1])
        z = x.clone()
        z[:, o : o + 1] = x[:, o : o + 1] * s.exp() + t
        return z, s.sum(dim=1)  # triangular Jacobian: log-det = sum of the log-scales

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        k, o = self.keep, 1 - self.keep
        s, t = self.params(z[:, k : k + 1])  # z_keep = x_keep, so s and t are recomputable
        x = z.clone()
        x[:, o : o + 1] = (z[:, o : o + 1] - t) * (-s).exp()
        return x


class Flow(nn.Module):
    def __init__(self, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(Coupling(keep=i % 2) for i in range(n_layers))
        self.shift = nn.Parameter(torch.zeros(2))  # a final elementwise affine layer
        self.log_scale = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor):
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        z = x * self.log_scale.exp() + self.shift
        return z, log_det + self.log_scale.sum()

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        x = (z - self.shift) * (-self.log_scale).exp()
        for layer in reversed(self.layers):
            x = layer.inverse(x)
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, log_det = self(x)
        log_pz = -0.5 * (z**2).sum(dim=1) - math.log(2 * math.pi)  # N(0, I) in 2-D
        return log_pz + log_det  # change of variables


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    n_layers = ctx.pick(6, 8)
    flow = Flow(n_layers).to(device)
    train = two_moons(ctx.pick(2000, 8000), g).to(device)
    test = two_moons(2000, g).to(device)

    # the best Gaussian (moment matching = its maximum-likelihood fit): any affine flow's limit
    mu, cov = train.mean(0), torch.cov(train.T)
    gauss = torch.distributions.MultivariateNormal(mu, cov)
    gauss_nll = -gauss.log_prob(test).mean().item()

    steps = ctx.pick(300, 2000)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    curve, every = [], steps // 20
    with torch.no_grad():
        nll_init = -flow.log_prob(test).mean().item()
    for step in range(1, steps + 1):
        batch = train[torch.randint(0, train.shape[0], (256,), generator=g).to(device)]
        loss = -flow.log_prob(batch).mean()  # maximum likelihood, exactly
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            with torch.no_grad():
                curve.append(-flow.log_prob(test).mean().item())
    nll_final = curve[-1]
    result.curves.append(
        Curve(
            f"Held-out NLL (nats per point); best Gaussian {gauss_nll:.3f}",
            f"step (every {every})",
            {"RealNVP": curve},
        )
    )

    # ---- the checks run in float64, so agreement is limited only by round-off ----------------
    flow64 = flow.double()
    x = test[:256].double()
    with torch.no_grad():
        z, log_det = flow64(x)
        x_back = flow64.inverse(z)
    inv_err = (x_back - x).abs().max().item()

    def f_single(v: torch.Tensor) -> torch.Tensor:
        return flow64(v[None])[0][0]

    jac_dets = []
    for i in range(8):
        jac = torch.autograd.functional.jacobian(f_single, x[i])  # (2, 2)
        jac_dets.append(torch.linalg.slogdet(jac)[1].item())
    jac_dets = torch.tensor(jac_dets, dtype=torch.float64)
    logdet_err = (jac_dets - log_det[:8].cpu()).abs().max().item()

    # integrate the learned density over a grid that holds (almost) all the mass
    side = ctx.pick(300, 600)
    lo, hi = -4.0, 4.0
    axis = torch.linspace(lo, hi, side, dtype=torch.float64, device=device)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        density = flow64.log_prob(grid).exp()
    cell = ((hi - lo) / (side - 1)) ** 2
    mass = (density.sum() * cell).item()

    # mass on the bridge: the probability of the region between the moons with no data
    with torch.no_grad():
        samples = flow64.inverse(torch.randn(4000, 2, generator=g, dtype=torch.float64).to(device))
        real = two_moons(4000, g).double().to(device)
    dist_s = torch.cdist(samples, real).min(dim=1).values
    dist_r = torch.cdist(real[:2000], real[2000:]).min(dim=1).values
    far = dist_s > dist_r.quantile(0.99)  # farther from the data than 99% of real points
    off_data = far.float().mean().item()

    result.tables.append(
        Table(
            f"RealNVP, {n_layers} affine coupling layers, two moons",
            ["check", "value"],
            [
                ["max |f^-1(f(x)) - x| (float64)", f"{inv_err:.1e}"],
                ["max |coupling log-det - autograd log|det J||", f"{logdet_err:.1e}"],
                ["integral of p(x) over [-4, 4]^2", round(mass, 4)],
                ["held-out NLL at init (identity flow)", round(nll_init, 3)],
                ["held-out NLL, best Gaussian", round(gauss_nll, 3)],
                [f"held-out NLL after {steps} steps", round(nll_final, 3)],
                ["samples farther from the data than 99% of real points", f"{off_data:.1%}"],
            ],
        )
    )
    result.claim(
        "The coupling flow is exactly invertible: f^-1(f(x)) returns x to float64 round-off.",
        inv_err < 1e-10,
        f"max error {inv_err:.1e}",
    )
    result.claim(
        "The cheap log-det (the sum of the coupling log-scales) equals log|det| of the full "
        "Jacobian computed by autograd.",
        logdet_err < 1e-8,
        f"max difference over 8 points {logdet_err:.1e}",
    )
    result.claim(
        "The change-of-variables density is a proper density: it integrates to 1 (within 3%) "
        "over a grid.",
        abs(mass - 1) < 0.03,
        f"integral {mass:.4f} on a {side}x{side} grid over [-4, 4]^2",
    )
    result.claim(
        "Maximum likelihood training works: the held-out NLL falls below the best Gaussian's "
        "(the limit of any affine flow) by more than 0.3 nats.",
        nll_final < gauss_nll - 0.3 and nll_final < nll_init,
        f"NLL {nll_init:.3f} (init) -> {nll_final:.3f}; best Gaussian {gauss_nll:.3f}",
    )
    result.notes.append(
        f"{off_data:.1%} of the flow's samples lie farther from the data than 99% of real "
        "points do (a perfect model: at most about 1%). Part of this is the bridge between "
        "the moons that a continuous bijection cannot remove, part a spread around the moons "
        "that more training would tighten."
    )
    result.metrics = {
        "inverse_error": inv_err,
        "logdet_error": logdet_err,
        "density_integral": mass,
        "nll_init": nll_init,
        "nll_final": nll_final,
        "nll_best_gaussian": gauss_nll,
        "samples_off_data": off_data,
    }
    return result
