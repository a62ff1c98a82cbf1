"""FID from scratch on Gaussian features: the formula checked, and its bias with sample size.

What it shows (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium", arXiv 1706.08500; Chong & Forsyth 2020, "Effectively Unbiased FID
and Inception Score and where to find them", arXiv 1911.07023):
- FID fits a Gaussian to each set of features (in practice Inception-v3 pool features, 2048-D;
  here synthetic 64-D features, so the true answer is known) and reports the squared
  Frechet (2-Wasserstein) distance between the two Gaussians:
  FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2}).
  The demo computes the matrix square root from an eigendecomposition and checks it against
  the closed form for commuting covariances, sum_i (sqrt(a_i) - sqrt(b_i))^2, after a random
  rotation that makes both covariances dense (FID does not change under a rotation).
- Both kinds of failure raise it: shifted features (fidelity) through the mean term, a
  shrunken spread (less diversity, as when a GAN drops modes) through the trace term.
- FID is biased: two samples of the SAME distribution give FID > 0, and the bias falls
  roughly like 1/N with the number of samples N (Chong & Forsyth). So FIDs computed with
  different N are not comparable: a truly worse generator scored on many samples can beat a
  perfect one scored on few. Papers fix N (usually 50k generated images) and the feature
  extractor's exact implementation.

What really happens:
- The bias is larger the higher the feature dimension is relative to N (the sample covariance
  of N points in d dims is noisy). For these Gaussian features N x FID stays close to
  d(d+1)/2 + 2d (measured and printed in a note), so it grows with the square of the
  dimension; for real Inception features the size of the bias depends on their spectrum and
  must be measured (Chong & Forsyth extrapolate to N = infinity: "FID_infinity").

Run: dlprep demo fid
"""

from __future__ import annotations

import torch

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

DIM = 64


def sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix via its eigendecomposition."""
    vals, vecs = torch.linalg.eigh(a)
    return vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T


def fid_from_stats(mu1, s1, mu2, s2) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).

    Tr (S1 S2)^{1/2} = Tr (S1^{1/2} S2 S1^{1/2})^{1/2}: the same eigenvalues, and the second
    matrix is symmetric PSD, so eigh applies (S1 S2 itself is not symmetric).
    """
    r1 = sqrtm_psd(s1)
    cross = sqrtm_psd(r1 @ s2 @ r1)
    return ((mu1 - mu2).pow(2).sum() + torch.trace(s1 + s2 - 2 * cross)).item()


def fid_from_samples(x: torch.Tensor, y: torch.Tensor) -> float:
    return fid_from_stats(x.mean(0), torch.cov(x.T), y.mean(0), torch.cov(y.T))


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    f64 = dict(dtype=torch.float64, device=device)

    # ---- 1. the formula: general matrix square root vs the closed form for commuting S ------
    a = torch.rand(DIM, generator=g, dtype=torch.float64).to(device) + 0.5  # variances, real
    b = torch.rand(DIM, generator=g, dtype=torch.float64).to(device) + 0.5  # variances, fake
    mu_r = torch.randn(DIM, generator=g, dtype=torch.float64).to(device)
    mu_g = mu_r + 0.1 * torch.randn(DIM, generator=g, dtype=torch.float64).to(device)
    closed = ((mu_r - mu_g).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum()).item()
    q, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=g, dtype=torch.float64).to(device))
    s_r, s_g = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T  # dense, same eigenvectors
    general = fid_from_stats(q @ mu_r, s_r, q @ mu_g, s_g)
    naive = ((mu_r - mu_g).pow(2).sum() + (a - b).abs().sum()).item()
    result.claim(
        "The FID formula, computed with a matrix square root, equals the closed form "
        "||mu_r - mu_g||^2 + sum (sqrt(a_i) - sqrt(b_i))^2 for covariances with shared "
        "eigenvectors (here rotated to be dense).",
        abs(general - closed) < 1e-8 * max(1.0, closed),
        f"matrix-sqrt FID {general:.10f} vs closed form {closed:.10f} "
        f"(a naive |a - b| trace term would give {naive:.4f})",
    )

    # ---- 2. what raises it: a shifted mean (fidelity) or a shrunken spread (diversity) ------
    n_big = ctx.pick(20000, 50000)
    real = torch.randn(n_big, DIM, generator=g, **{"dtype": torch.float64}).to(device)
    shifted = torch.randn(n_big, DIM, generator=g, dtype=torch.float64).to(device) + 0.25
    narrow = 0.6 * torch.randn(n_big, DIM, generator=g, dtype=torch.float64).to(device)
    same = torch.randn(n_big, DIM, generator=g, dtype=torch.float64).to(device)
    eye, zero = torch.eye(DIM, **f64), torch.zeros(DIM, **f64)
    true = {
        "same distribution": 0.0,
        "mean shifted by 0.25 per dim": fid_from_stats(zero, eye, zero + 0.25, eye),
        "std 0.6 (less diverse)": fid_from_stats(zero, eye, zero, 0.36 * eye),
    }
    measured = {
        "same distribution": fid_from_samples(real, same),
        "mean shifted by 0.25 per dim": fid_from_samples(real, shifted),
        "std 0.6 (less diverse)": fid_from_samples(real, narrow),
    }
    result.tables.append(
        Table(
            f"FID against N({DIM}-D standard normal), {n_big} samples each",
            ["generated features", "true FID (population)", "measured FID"],
            [[k, round(true[k], 3), round(measured[k], 3)] for k in true],
        )
    )
    result.claim(
        "A mean shift (fidelity) and a shrunken spread (lost diversity) both raise FID, and "
        "with many samples the measured values are within 5% (+0.2) of the population values.",
        all(abs(measured[k] - true[k]) < 0.05 * true[k] + 0.2 for k in true)
        and min(measured["mean shifted by 0.25 per dim"], measured["std 0.6 (less diverse)"])
        > 5 * measured["same distribution"],
        ", ".join(f"{k}: {measured[k]:.3f} (true {true[k]:.3f})" for k in true),
    )

    # ---- 3. the bias: two samples of the same distribution, N from small to large ----------
    sizes = ctx.pick([250, 500, 1000, 2000, 4000], [250, 500, 1000, 2000, 4000, 8000, 16000])
    reps = ctx.pick(4, 10)
    bias = {}
    for n in sizes:
        vals = []
        for _ in range(reps):
            x = torch.randn(n, DIM, generator=g, dtype=torch.float64).to(device)
            y = torch.randn(n, DIM, generator=g, dtype=torch.float64).to(device)
            vals.append(fid_from_samples(x, y))
        bias[n] = sum(vals) / reps
    ratios = [bias[n] / bias[2 * n] for n in sizes if 2 * n in bias]
    result.tables.append(
        Table(
            f"FID between two samples of the same {DIM}-D Gaussian (true FID 0), mean of {reps}",
            ["N per set", "FID", "N x FID"],
            [[n, round(bias[n], 3), round(n * bias[n], 1)] for n in sizes],
        )
    )
    result.claim(
        "FID is biased upwards: two samples of the same distribution score FID > 0, and the "
        "bias falls like 1/N (halving each time N doubles, ratio between 1.6 and 2.4).",
        all(b > 0 for b in bias.values()) and all(1.6 < r < 2.4 for r in ratios),
        "FID at N = "
        + ", ".join(f"{n}: {bias[n]:.3f}" for n in sizes)
        + "; ratios "
        + ", ".join(f"{r:.2f}" for r in ratios),
    )

    # ---- 4. consequence: comparing FIDs computed at different N is unfair -------------------
    n_small, n_large = sizes[1], sizes[-1]
    worse_true = fid_from_stats(zero, eye, zero + 0.15, eye)  # a truly worse generator
    worse = []
    for _ in range(reps):
        x = torch.randn(n_large, DIM, generator=g, dtype=torch.float64).to(device)
        y = torch.randn(n_large, DIM, generator=g, dtype=torch.float64).to(device) + 0.15
        worse.append(fid_from_samples(x, y))
    worse_large = sum(worse) / reps
    result.claim(
        f"Sample size can beat quality: a worse generator (true FID {worse_true:.2f}) scored on "
        f"{n_large} samples gets a LOWER FID than a perfect one (true FID 0) scored on "
        f"{n_small}.",
        worse_large < bias[n_small],
        f"worse generator at N = {n_large}: {worse_large:.3f}; perfect generator at "
        f"N = {n_small}: {bias[n_small]:.3f}",
    )
    result.notes.append(
        f"N x FID stays near {sum(n * bias[n] for n in sizes) / len(sizes):.0f} here, close to "
        f"(d(d+1)/2 + 2d) = {DIM * (DIM + 1) // 2 + 2 * DIM} for d = {DIM}: for isotropic "
        "features the bias grows with the square of the dimension. Real Inception features "
        "(2048-D) have their own spectrum, so measure the bias rather than assume it."
    )
    result.metrics = {
        "fid_general": general,
        "fid_closed_form": closed,
        "fid_measured": measured,
        "fid_true": true,
        "bias_by_n": {str(n): v for n, v in bias.items()},
        "worse_generator_large_n": worse_large,
    }
    return result
