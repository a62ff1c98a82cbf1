"""Double descent: test error peaks where the model can just interpolate, then falls again.

What it shows, measured with random ReLU features (a two-layer network whose first layer
is frozen at random, so training is linear least squares and exact), n = 100 noisy training
points, and the number of features p swept from 10 to 2000:

- Fitted by the *minimum-norm* least-squares solution (what gradient descent from zero
  converges to), the test error follows the classical U while p < n, peaks sharply at the
  interpolation threshold p = n, and falls again as p grows past it: model-wise double
  descent (Belkin et al. 2019, "Reconciling modern machine-learning practice and the
  classical bias-variance trade-off", arXiv 1812.11118; Nakkiran et al. 2019, "Deep Double
  Descent", arXiv 1912.02292, for deep nets).
- Why the peak: at p = n there is exactly one interpolating solution, and fitting the noise
  with it needs huge weights (the feature matrix is nearly singular); the demo measures the
  weight norm peaking there. Past the threshold many weight vectors interpolate, and the
  minimum-norm one is smooth.
- The bias-variance picture: over independent training sets, the *variance* of the
  prediction peaks at p = n and makes up most of the spike, while the squared bias is
  smallest at the widest models. (Near p = n the table's bias^2 is inflated too: it is
  estimated from a mean over a few training sets, which still carries variance / trials.)
  The classical "bigger model = more variance" story is the left half of this curve only.
- A ridge penalty (weight decay) tuned for each width removes the peak (Nakkiran et al.
  2020, "Optimal Regularization Can Mitigate Double Descent", arXiv 2003.01897). The demo
  picks the best of a few penalties per width on the test error itself, as an oracle; in
  practice that choice is made on a validation set.

What the demo does not show: epoch-wise double descent in deep nets (see early-stopping,
whose small MLP does not show a second descent). Whether the far right beats the best
under-parameterised model depends on the target, the noise and the features: here the
target is itself a random 50-unit ReLU network, and the two come out about even (which one
wins changes with the seed); with a very simple target and noisy labels the smallest model
stays the best, and with less label noise the widest one wins clearly.

Run: dlprep demo double-descent
"""

from __future__ import annotations

import torch

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    dt = torch.float64

    d, n, n_test, noise = 10, 100, 1000, 0.3
    widths = [10, 25, 50, 75, 90, 100, 110, 125, 150, 200, 400, 1000, 2000]
    trials = ctx.pick(10, 40)
    ridges = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
    v_true = torch.randn(d, 50, generator=g, dtype=dt)  # a random 50-unit teacher network
    c_true = torch.randn(50, generator=g, dtype=dt)

    def target(x):  # (m, d) -> (m,): the teacher's output, variance ~0.5
        return torch.relu(x @ v_true / d**0.5) @ c_true / 50**0.5

    x_te = torch.randn(n_test, d, generator=g, dtype=dt)  # (1000, 10)
    f_te = target(x_te)
    preds = {p: [] for p in widths}  # min-norm predictions per trial
    preds_ridge = {(p, lam): [] for p in widths for lam in ridges}
    train_err, norms = {p: [] for p in widths}, {p: [] for p in widths}
    for _ in range(trials):
        x = torch.randn(n, d, generator=g, dtype=dt)  # a fresh training set
        y = target(x) + noise * torch.randn(n, generator=g, dtype=dt)
        w_feat = torch.randn(d, max(widths), generator=g, dtype=dt) / d**0.5  # random layer
        for p in widths:
            phi = torch.relu(x @ w_feat[:, :p]).to(device)  # (n, p) features
            phi_te = torch.relu(x_te @ w_feat[:, :p]).to(device)
            yd = y.to(device)
            a = torch.linalg.pinv(phi) @ yd  # minimum-norm least squares
            preds[p].append((phi_te @ a).cpu())
            train_err[p].append(((phi @ a - yd) ** 2).mean().item())
            norms[p].append(a.norm().item())
            # ridge: (phi^T phi + lam I)^-1 phi^T y, written in the n x n form
            for lam in ridges:
                k = phi @ phi.T + lam * torch.eye(n, dtype=dt, device=device)
                a_r = phi.T @ torch.linalg.solve(k, yd)
                preds_ridge[p, lam].append((phi_te @ a_r).cpu())

    rows, test, test_r, var, bias2 = [], {}, {}, {}, {}
    for p in widths:
        pr = torch.stack(preds[p])  # (trials, n_test)
        test[p] = ((pr - f_te) ** 2).mean().item() + noise**2  # expected test MSE
        # ridge tuned for each p (on the test error, as an oracle: in practice a validation set)
        test_r[p] = min(((torch.stack(preds_ridge[p, lam]) - f_te) ** 2).mean().item()
                        for lam in ridges) + noise**2  # fmt: skip
        mean_pred = pr.mean(0)
        bias2[p] = ((mean_pred - f_te) ** 2).mean().item()
        var[p] = pr.var(0, unbiased=False).mean().item()
        tr = sum(train_err[p]) / trials
        nm = sum(norms[p]) / trials
        rows.append([p, f"{tr:.3f}", f"{test[p]:.3f}", f"{bias2[p]:.3f}", f"{var[p]:.3f}",
                     f"{nm:.1f}", f"{test_r[p]:.3f}"])  # fmt: skip
    result.tables.append(
        Table(
            f"Random ReLU features, n = {n} training points, noise variance {noise**2}, "
            f"mean over {trials} training sets (test MSE includes the noise floor {noise**2})",
            [
                "features p",
                "train MSE",
                "test MSE",
                "bias^2",
                "variance",
                "|a| (weights)",
                "test MSE, tuned ridge",
            ],  # fmt: skip
            rows,
        )
    )
    result.curves.append(
        Curve(
            "Test MSE vs number of features",
            "p (index into the sweep)",
            {
                "min-norm": [test[p] for p in widths],
                "ridge": [test_r[p] for p in widths],
            },
            log_y=True,
        )  # fmt: skip
    )

    under = [p for p in widths if p < 0.8 * n]
    best_under = min(test[p] for p in under)
    peak_p = max(widths, key=lambda p: test[p])
    far = widths[-1]
    result.metrics = {
        "test_mse": {str(p): test[p] for p in widths},
        "test_mse_ridge": {str(p): test_r[p] for p in widths},
        "variance": {str(p): var[p] for p in widths},
        "bias2": {str(p): bias2[p] for p in widths},
        "peak_at": peak_p,
    }
    result.claim(
        "Past the interpolation threshold (p >= n) the min-norm fit has zero training error.",
        all(sum(train_err[p]) / trials < 1e-12 for p in widths if p >= n),
        "train MSE at p = "
        + ", ".join(
            f"{p}: {sum(train_err[p]) / trials:.1e}" for p in widths if p >= n
        ),  # fmt: skip
    )
    result.claim(
        "The test error peaks at the interpolation threshold (p within 10% of n), at >= 3x "
        "the best under-parameterised test error.",
        0.9 * n <= peak_p <= 1.1 * n and test[peak_p] >= 3 * best_under,
        f"peak test MSE {test[peak_p]:.3f} at p = {peak_p} (n = {n}); best for p < 0.8n: "
        f"{best_under:.3f}",
    )
    result.claim(
        "It falls again with more features: the widest model's test error is >= 10x below "
        "the peak and within 25% of the best under-parameterised model's.",
        test[far] * 10 <= test[peak_p] and test[far] <= 1.25 * best_under,
        f"test MSE at p = {far}: {test[far]:.3f}; best for p < 0.8n: {best_under:.3f}",
    )
    var_peak = max(widths, key=lambda p: var[p])
    result.claim(
        "The peak is variance: the variance over training sets is largest at the threshold, "
        "while the squared bias at the widest model is below that at the narrowest.",
        0.9 * n <= var_peak <= 1.1 * n and bias2[far] < bias2[widths[0]],
        f"variance peaks at p = {var_peak} ({var[var_peak]:.3f}); bias^2 at p = "
        f"{widths[0]}: {bias2[widths[0]]:.3f}, at p = {far}: {bias2[far]:.3f}",
    )
    result.claim(
        "A ridge penalty (weight decay) tuned for each p removes the peak: at p = n its test "
        "error is below 1/3 of the min-norm fit's and within 1.5x of its own best.",
        test_r[n] < test[n] / 3 and test_r[n] < 1.5 * min(test_r.values()),
        f"at p = n: min-norm {test[n]:.3f}, tuned ridge {test_r[n]:.3f}; ridge best "
        f"{min(test_r.values()):.3f}",
    )
    return result
