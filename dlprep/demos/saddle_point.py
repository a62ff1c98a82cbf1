"""Saddle points, not local minima: GD stalls near a saddle; noise, momentum and Adam escape.

What it shows, measured on f(x, y) = x^2 / 2 + y^4 / 4 - y^2 / 2, which has a strict saddle
at the origin (Hessian diag(1, -1)) and two minima at (0, +-1):

- A zero gradient is not a minimum. Started exactly on the saddle's stable manifold (y = 0),
  gradient descent converges to the saddle: the gradient norm goes to ~0 while the Hessian
  there still has a negative eigenvalue. Random initialisation almost surely avoids that set
  (Lee et al. 2016, "Gradient Descent Converges to Minimizers"), but it can still be slow.
- Near the saddle the escape direction grows only like (1 + lr)^t, so GD's escape time
  grows with log(1 / y0): the closer it starts to the stable manifold, the longer the
  plateau. This is the plateau a training curve shows, not a trap.
- Gradient noise (SGD) kicks it off the manifold: from exactly y = 0 it escapes in a finite
  number of steps (perturbed GD, Jin et al. 2017, "How to Escape Saddle Points Efficiently").
- Momentum (heavy ball, beta = 0.9) multiplies the growth rate in the escape direction, and
  Adam divides the tiny gradient by its own RMS, so its step does not shrink near the saddle:
  both escape several times faster than GD at the same learning rate.
- Why saddles dominate in high dimension (Dauphin et al. 2014, "Identifying and attacking the
  saddle point problem in high-dimensional non-convex optimization"): if a critical point's
  Hessian looked like a random symmetric matrix, the chance that *all* its eigenvalues are
  positive would fall very fast with the dimension. The demo samples random symmetric
  (GOE) matrices. This is a heuristic (real loss Hessians are not GOE; Dauphin et al. cite
  Bray & Dean 2007 for random Gaussian fields), but it is the usual argument, and in
  practice local minima of large networks have losses close to the global minimum.

Run: dlprep demo saddle-point
"""

from __future__ import annotations

import math

import torch

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def _grad(p: torch.Tensor) -> torch.Tensor:
    # f(x, y) = x^2 / 2 + y^4 / 4 - y^2 / 2  ->  grad = (x, y^3 - y)
    x, y = p[0], p[1]
    return torch.stack([x, y**3 - y])


def _escape_steps(
    start: tuple[float, float],
    make_opt,
    max_steps: int,
    device: torch.device,
    noise: float = 0.0,
    g: torch.Generator | None = None,
) -> tuple[int, torch.Tensor]:
    """Steps until |y| > 0.5 (half way to a minimum); max_steps if it never gets there."""
    p = torch.tensor(start, dtype=torch.float64, device=device, requires_grad=True)
    opt = make_opt([p])
    for step in range(1, max_steps + 1):
        grad = _grad(p.detach())
        if noise > 0:  # a stochastic gradient: the true one plus zero-mean noise
            grad = grad + noise * torch.randn(2, generator=g, dtype=torch.float64).to(device)
        p.grad = grad
        opt.step()
        if abs(p[1].item()) > 0.5:
            return step, p.detach()
    return max_steps, p.detach()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    lr = 0.01
    max_steps = 4000

    def gd(params):
        return torch.optim.SGD(params, lr=lr)

    def momentum(params):
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    def adam(params):
        return torch.optim.Adam(params, lr=lr)

    # ---- 1. GD started on the stable manifold converges to the saddle ----------------------
    steps0, p0 = _escape_steps((1.0, 0.0), gd, max_steps, device)
    grad_norm = _grad(p0).norm().item()
    # Hessian at the end point: diag(1, 3 y^2 - 1)
    hess_min = min(1.0, 3 * p0[1].item() ** 2 - 1)

    # ---- 2. escape time vs distance from the stable manifold --------------------------------
    y0s = [1e-3, 1e-6, 1e-9]
    gd_steps = [_escape_steps((1.0, y0), gd, max_steps, device)[0] for y0 in y0s]

    # ---- 3. noise, momentum and Adam ------------------------------------------------------
    noise_steps = _escape_steps((1.0, 0.0), gd, max_steps, device, noise=0.01, g=g)[0]
    y0 = 1e-6
    mom_steps = _escape_steps((1.0, y0), momentum, max_steps, device)[0]
    adam_steps = _escape_steps((1.0, y0), adam, max_steps, device)[0]
    gd_1e6 = gd_steps[1]

    result.tables.append(
        Table(
            f"Steps to escape the saddle of x^2/2 + y^4/4 - y^2/2 (|y| > 0.5), lr = {lr}",
            ["start", "optimizer", "steps", "theory for GD: ln(0.5 / y0) / ln(1 + lr)"],
            [["(1, 0)", "GD", f">= {steps0} (stuck: |grad| {grad_norm:.1e})", "never"]]
            + [
                [f"(1, {y:.0e})", "GD", s, f"{math.log(0.5 / y) / math.log(1 + lr):.0f}"]
                for y, s in zip(y0s, gd_steps, strict=True)
            ]
            + [
                ["(1, 0)", "GD + gradient noise 0.01", noise_steps, ""],
                [f"(1, {y0:.0e})", "momentum 0.9", mom_steps, ""],
                [f"(1, {y0:.0e})", "Adam", adam_steps, ""],
            ],
        )
    )

    # ---- 4. random symmetric matrices: how often are all eigenvalues positive? --------------
    n_mat = ctx.pick(20000, 100000)
    dims = [1, 2, 3, 4, 6, 8]
    frac_pd = []
    for d in dims:
        a = torch.randn(n_mat, d, d, generator=g, dtype=torch.float64)
        sym = (a + a.transpose(1, 2)) / 2  # (n, d, d) GOE-like
        eig_min = torch.linalg.eigvalsh(sym.to(device))[:, 0]  # smallest eigenvalue
        frac_pd.append((eig_min > 0).double().mean().item())
    result.tables.append(
        Table(
            f"Fraction of {n_mat} random symmetric d x d matrices with all eigenvalues > 0",
            ["d", "fraction positive definite (a 'minimum')"],
            [[d, f"{f:.5f}"] for d, f in zip(dims, frac_pd, strict=True)],
        )
    )

    result.metrics = {
        "gd_on_manifold_grad_norm": grad_norm,
        "gd_on_manifold_min_hessian_eigenvalue": hess_min,
        "gd_escape_steps": dict(zip([str(y) for y in y0s], gd_steps, strict=True)),
        "noisy_gd_escape_steps_from_saddle": noise_steps,
        "momentum_escape_steps": mom_steps,
        "adam_escape_steps": adam_steps,
        "fraction_positive_definite": dict(zip([str(d) for d in dims], frac_pd, strict=True)),
    }
    result.claim(
        "A zero gradient is not a minimum: GD started on the saddle's stable manifold converges "
        "to the saddle (gradient ~0) where the Hessian still has a negative eigenvalue.",
        steps0 == max_steps and grad_norm < 1e-6 and hess_min < -0.5,
        f"after {max_steps} steps: |grad| {grad_norm:.1e}, smallest Hessian eigenvalue "
        f"{hess_min:.2f}",
    )
    t3, t6, t9 = gd_steps
    result.claim(
        "GD's escape time grows with log(1/y0): each factor 1000 closer to the stable manifold "
        "adds about the same number of steps (ln 1000 / lr ~ 690).",
        all(s < max_steps for s in gd_steps) and 550 <= t6 - t3 <= 850 and 550 <= t9 - t6 <= 850,
        f"steps for y0 = 1e-3, 1e-6, 1e-9: {t3}, {t6}, {t9}",
    )
    result.claim(
        "Gradient noise escapes the saddle that exact GD cannot leave.",
        noise_steps < max_steps,
        f"noisy GD from (1, 0): {noise_steps} steps; exact GD: stuck after {max_steps}",
    )
    result.claim(
        "At the same learning rate, momentum and Adam escape at least 3x faster than GD.",
        3 * mom_steps <= gd_1e6 and 3 * adam_steps <= gd_1e6,
        f"from y0 = 1e-6: GD {gd_1e6}, momentum {mom_steps}, Adam {adam_steps} steps",
    )
    result.claim(
        "Random symmetric matrices are rarely positive definite in more than a few dimensions: "
        "under 1% at d = 6 (the heuristic for why most critical points are saddles).",
        frac_pd[0] > 0.45 and frac_pd[dims.index(6)] < 0.01 and frac_pd == sorted(frac_pd)[::-1],
        "fractions for d = "
        + ", ".join(f"{d}: {f:.5f}" for d, f in zip(dims, frac_pd, strict=True)),
    )
    result.notes.append(
        "Adam escapes fast because its step is ~lr * m / sqrt(v), about lr whatever the "
        "gradient's size; the same normalisation makes it step over flat regions quickly."
    )
    return result
