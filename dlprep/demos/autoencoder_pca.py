"""A linear autoencoder learns the PCA subspace (not the PCs); a denoising AE cannot copy.

What it shows (Baldi & Hornik 1989, "Neural networks and principal component analysis:
learning from examples without local minima"; Vincent et al. 2008, "Extracting and Composing
Robust Features with Denoising Autoencoders"):
- Undercomplete linear AE. Data in 20-D that mostly live on a 3-D subspace (plus small
  isotropic noise). An autoencoder x -> W_d (W_e x + b_e) + b_d with a 3-unit bottleneck,
  trained on squared error, reaches PCA's optimal reconstruction error (the sum of the
  discarded eigenvalues), and its decoder's columns span the same subspace as the top 3
  principal directions (principal angles ~ 0).
- But it does not find the principal components themselves: any invertible 3x3 mixing A
  (W_e -> A W_e, W_d -> W_d A^-1) reconstructs equally well, so its individual columns are
  mixtures of the PCs, neither orthogonal nor ordered by variance. The bottleneck, not the
  network, does the work: a linear AE is PCA up to an invertible change of basis; a
  non-linear one can learn curved manifolds PCA cannot.
- Overcomplete AE (hidden = input width): without a constraint it can learn the identity,
  reconstructing the training data almost perfectly while learning nothing useful; fed a
  noisy input, it passes the noise straight through. A denoising AE is trained to map
  x + noise back to x: copying no longer works, and the linear one converges to the optimal
  linear denoiser (the Wiener filter Sigma (Sigma + s^2 I)^-1), which shrinks the input
  towards the data's subspace.

What really happens:
- The linear AE's loss has no spurious local minima, but it has saddle points: the critical
  points that project onto any other set of eigenvectors, e.g. with one of the top
  directions missing (Baldi & Hornik). Gradient descent escapes them, but slowly: with 600
  instead of 1500 Adam steps, some seeds are still on their way out of a saddle, the third
  direction only partly learned (reconstruction error up to ~0.5 above PCA's; missing it
  entirely would cost its eigenvalue, ~2.3).

Run: dlprep demo autoencoder-pca
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

DIM, K = 20, 3
SIGNAL_STD = (3.0, 2.0, 1.5)  # std of the 3 factors
NOISE_STD = 0.3  # isotropic noise in all 20 dims


def make_data(n: int, basis: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    z = torch.randn(n, K, generator=g) * torch.tensor(SIGNAL_STD)  # (n, K)
    return z @ basis.T + NOISE_STD * torch.randn(n, DIM, generator=g) + 1.0  # (n, DIM), mean 1


def train(model: nn.Module, x_in: torch.Tensor, x_target: torch.Tensor, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = (model(x_in) - x_target).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    basis, _ = torch.linalg.qr(torch.randn(DIM, K, generator=g))  # (DIM, K) orthonormal
    n = ctx.pick(500, 2000)
    x = make_data(n, basis, g).to(device)
    steps = ctx.pick(1500, 4000)  # the bottleneck AE: saddles make it the slowest to fit
    short = ctx.pick(1000, 2000)  # the overcomplete AEs converge faster

    # ---- PCA: eigen-decomposition of the sample covariance --------------------------------
    xc = x - x.mean(0)
    cov = xc.T @ xc / n  # (DIM, DIM), the same normalisation as the AE's mean loss
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0), evecs.flip(1)
    pcs = evecs[:, :K]  # (DIM, K) top principal directions
    pca_error = evals[K:].sum().item()  # optimal rank-K reconstruction error per sample

    # ---- 1. undercomplete linear AE ---------------------------------------------------------
    ae = nn.Sequential(nn.Linear(DIM, K), nn.Linear(K, DIM)).to(device)
    ae_error = train(ae, x, x, steps)
    dec = ae[1].weight.detach()  # (DIM, K): the decoder's columns
    q_dec, _ = torch.linalg.qr(dec)  # orthonormal basis of their span
    cosines = torch.linalg.svdvals(q_dec.T @ pcs)  # cosines of the principal angles
    max_angle = math.degrees(math.acos(min(1.0, cosines.min().item())))
    # how well does each single decoder column match a single PC?
    col_cos = (nn.functional.normalize(dec, dim=0).T @ pcs).abs()  # (K, K)
    best_match = col_cos.max(dim=1).values  # (K,)
    gram = nn.functional.normalize(dec, dim=0).T @ nn.functional.normalize(dec, dim=0)
    off_diag = (gram - torch.eye(K, device=device)).abs().max().item()

    result.tables.append(
        Table(
            f"Rank-{K} reconstruction of {n} points in {DIM}-D",
            ["model", "squared error per sample", "note"],
            [
                ["PCA (top 3 eigenvectors)", round(pca_error, 4), "optimum: sum of the other 17"],
                ["linear AE, 3 hidden units", round(ae_error, 4), f"{steps} Adam steps"],
            ],
        )
    )
    result.claim(
        "A linear autoencoder with a 3-unit bottleneck reaches PCA's optimal reconstruction "
        "error (within 2%).",
        ae_error < 1.02 * pca_error,
        f"AE {ae_error:.4f} vs PCA {pca_error:.4f}",
    )
    result.claim(
        "Its decoder spans the top-3 principal subspace: the largest principal angle between "
        "the two subspaces is under 2 degrees.",
        max_angle < 2.0,
        f"cosines of the principal angles {[round(c, 5) for c in cosines.tolist()]}, "
        f"largest angle {max_angle:.2f} deg",
    )
    result.claim(
        "But its units are not the principal components: at least one decoder column is a "
        "mixture (|cos| with its best-matching PC below 0.99), and the columns are not "
        "orthogonal (some |cos| between two columns above 0.1).",
        best_match.min().item() < 0.99 and off_diag > 0.1,
        f"best |cos| of each column with a PC: {[round(c, 3) for c in best_match.tolist()]}; "
        f"largest |cos| between two columns {off_diag:.3f}",
    )

    # ---- 2. overcomplete: plain AE vs denoising AE -------------------------------------------
    s = 1.0  # corruption noise std for the denoising task
    x_test = make_data(n, basis, g).to(device)
    noisy_test = x_test + s * torch.randn(n, DIM, generator=g).to(device)

    plain = nn.Sequential(nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)).to(device)
    train(plain, x, x, short)
    dae = nn.Sequential(nn.Linear(DIM, DIM), nn.Linear(DIM, DIM)).to(device)
    # a fresh corruption at every step: the DAE never sees the same noisy input twice
    opt = torch.optim.Adam(dae.parameters(), lr=1e-2)
    for _ in range(short):
        noisy = x + s * torch.randn(n, DIM, generator=g).to(device)
        loss = (dae(noisy) - x).pow(2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    with torch.no_grad():
        plain_clean = (plain(x_test) - x_test).pow(2).sum(1).mean().item()
        plain_denoise = (plain(noisy_test) - x_test).pow(2).sum(1).mean().item()
        dae_denoise = (dae(noisy_test) - x_test).pow(2).sum(1).mean().item()
        identity_denoise = (noisy_test - x_test).pow(2).sum(1).mean().item()
        # the optimal linear denoiser from the training statistics: Wiener filter
        mean = x.mean(0)
        wiener = cov @ torch.linalg.inv(cov + s**2 * torch.eye(DIM, device=device))
        wiener_denoise = ((noisy_test - mean) @ wiener.T + mean - x_test).pow(2).sum(1)
        wiener_denoise = wiener_denoise.mean().item()
    result.tables.append(
        Table(
            f"Overcomplete linear AEs ({DIM} hidden units), test inputs + N(0, {s}^2) noise",
            ["model", "clean reconstruction error", "denoising error"],
            [
                [
                    "plain AE (trained on clean x -> x)",
                    round(plain_clean, 4),
                    round(plain_denoise, 3),
                ],
                ["denoising AE (x + noise -> x)", "", round(dae_denoise, 3)],
                ["identity map (do nothing)", 0.0, round(identity_denoise, 3)],
                ["Wiener filter (optimal linear)", "", round(wiener_denoise, 3)],
            ],
        )  # fmt: skip
    )
    result.claim(
        "An overcomplete plain AE learns (nearly) the identity: almost zero clean reconstruction "
        "error, and on noisy inputs it passes the noise through (denoising error within 10% of "
        "doing nothing).",
        plain_clean < 0.05 * pca_error
        and abs(plain_denoise - identity_denoise) < 0.1 * identity_denoise,
        f"clean error {plain_clean:.4f}; denoising error {plain_denoise:.3f} vs identity "
        f"{identity_denoise:.3f}",
    )
    result.claim(
        "The denoising AE cannot copy: it removes most of the noise (error under 40% of the "
        "identity's) and comes within 5% of the optimal linear denoiser.",
        dae_denoise < 0.4 * identity_denoise and dae_denoise < 1.05 * wiener_denoise,
        f"DAE {dae_denoise:.3f}, Wiener {wiener_denoise:.3f}, identity {identity_denoise:.3f}",
    )
    result.metrics = {
        "pca_error": pca_error,
        "ae_error": ae_error,
        "principal_angle_max_deg": max_angle,
        "column_best_pc_cos": best_match.tolist(),
        "plain_clean_error": plain_clean,
        "plain_denoise_error": plain_denoise,
        "dae_denoise_error": dae_denoise,
        "wiener_denoise_error": wiener_denoise,
        "identity_denoise_error": identity_denoise,
    }
    return result
