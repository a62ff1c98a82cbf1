"""Entropy, cross-entropy and KL measured: CE = H + KL, KL's asymmetry, MLE = min CE, perplexity.

What it shows (discrete distributions, so every quantity is an exact sum):

- Cross-entropy H(p, q) = -sum p log q splits into the entropy of the data H(p) plus the
  divergence KL(p || q) >= 0. H(p) does not depend on the model, so minimising cross-entropy
  and minimising KL(p || q) have the same minimiser and the same gradients. torch's
  F.kl_div(input, target) expects `input` = log q (log-probabilities) and `target` = p, and
  computes KL(target || exp(input)): the argument order trips people up.
- KL is not symmetric. Fitting one Gaussian q to a two-mode mixture p shows the two
  directions: forward KL(p || q) (what maximum likelihood minimises) is "mode-covering":
  q puts its mean between the modes and its spread over both (moment matching). Reverse
  KL(q || p) (what variational inference minimises) is "mode-seeking": q locks onto one
  mode, because q is punished wherever it puts mass where p has little. A one-mode fit
  has reverse KL close to ln 2 (q covers half of p's mass, where p is half as dense as q).
  What really happens, too: the reverse-KL objective is not convex. Started exactly between
  the modes (where the gradient in the mean is zero by symmetry) it stays at a broad fit
  (std ~1.7) with a higher KL; started from slightly off-centre points near 0.3-0.7 it
  sometimes also ends there, so the demo starts from 0.8-1.2.
- Maximum likelihood is cross-entropy minimisation: the average negative log-likelihood of
  samples is the cross-entropy between their empirical distribution p_hat and the model.
  Fitting a categorical model by gradient descent on the NLL recovers p_hat, and the
  minimal NLL is H(p_hat).
- PyTorch's cross_entropy takes class indices ("sparse" targets) or a probability per class
  (one-hot, smoothed or soft targets); with one-hot targets the two give the same loss.
  label_smoothing = eps is the same as the soft target (1 - eps) one_hot + eps / K.
- Perplexity = exp(cross-entropy in nats) = 2^(cross-entropy in bits): the effective number
  of equally likely choices. A uniform guess over K classes has perplexity exactly K.
- Mutual information I(X; Y) = KL(p(x, y) || p(x) p(y)) = H(X) + H(Y) - H(X, Y): zero for
  independent variables, H(X) when Y determines X (the table checks these identities).
  Estimated by counting from 2,000 samples of a 4x4 joint, it is close, but biased upwards:
  truly independent variables get an estimate of about (4 - 1)(4 - 1) / (2n) > 0 nats, the
  first sign of why estimating MI from samples is hard.

Run: dlprep demo information-theory
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def entropy(p: torch.Tensor) -> float:
    p = p[p > 0]  # 0 log 0 = 0
    return -(p * p.log()).sum().item()


def cross_entropy(p: torch.Tensor, q: torch.Tensor) -> float:
    return -(p * q.log()).sum().item()


def kl(p: torch.Tensor, q: torch.Tensor) -> float:
    m = p > 0
    return (p[m] * (p[m] / q[m]).log()).sum().item()


def _fit_gaussian(p, grid, direction: str, mu0: float, steps: int, device):
    """Fit q = N(mu, sigma^2), discretised on `grid`, to p by minimising KL in `direction`."""
    mu = torch.tensor(mu0, dtype=torch.float64, device=device, requires_grad=True)
    log_sigma = torch.tensor(0.0, dtype=torch.float64, device=device, requires_grad=True)
    opt = torch.optim.Adam([mu, log_sigma], lr=0.05)
    for _ in range(steps):
        log_q = -0.5 * ((grid - mu) / log_sigma.exp()) ** 2 - log_sigma
        log_q = log_q - torch.logsumexp(log_q, 0)  # normalise on the grid
        if direction == "forward":  # KL(p || q) = sum p (log p - log q)
            loss = -(p * log_q).sum()  # + H(p), a constant
        else:  # KL(q || p) = sum q (log q - log p)
            loss = (log_q.exp() * (log_q - (p + 1e-300).log())).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mu.item(), log_sigma.exp().item(), loss.item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    f64 = torch.float64
    result = DemoResult()

    # ---- 1. CE = H + KL, F.kl_div's argument order, asymmetry -----------------------------
    k = 6
    p = torch.softmax(4.0 * torch.randn(k, generator=g, dtype=f64), 0).to(device)  # peaked
    q = torch.softmax(0.5 * torch.randn(k, generator=g, dtype=f64), 0).to(device)  # flat
    h_p, ce_pq, kl_pq, kl_qp = entropy(p), cross_entropy(p, q), kl(p, q), kl(q, p)
    torch_kl = F.kl_div(q.log(), p, reduction="sum").item()  # input = log q, target = p
    torch_kl_swapped = F.kl_div(p.log(), q, reduction="sum").item()  # the common mistake
    identity_err = abs(ce_pq - (h_p + kl_pq))
    result.tables.append(
        Table(
            f"Two random distributions over {k} classes (nats)",
            ["quantity", "value"],
            [
                ["H(p)", f"{h_p:.6f}"],
                ["H(p, q) = cross-entropy", f"{ce_pq:.6f}"],
                ["H(p) + KL(p || q)", f"{h_p + kl_pq:.6f}"],
                ["KL(p || q)", f"{kl_pq:.6f}"],
                ["F.kl_div(q.log(), p, reduction='sum')", f"{torch_kl:.6f}"],
                [
                    "F.kl_div(p.log(), q, reduction='sum') (arguments swapped)",
                    f"{torch_kl_swapped:.6f}",
                ],  # fmt: skip
                ["KL(q || p)", f"{kl_qp:.6f}"],
            ],
        )
    )

    # ---- 2. forward vs reverse KL: one Gaussian fitted to two modes --------------------------
    grid = torch.linspace(-8, 8, 1601, dtype=f64, device=device)
    mix = 0.5 * torch.exp(-0.5 * ((grid + 2) / 0.5) ** 2) + 0.5 * torch.exp(
        -0.5 * ((grid - 2) / 0.5) ** 2
    )
    p_mix = mix / mix.sum()  # modes at -2 and +2, each with std 0.5: overall std sqrt(4.25)
    steps = ctx.pick(400, 1500)
    mu0 = 0.8 + 0.4 * torch.rand(1, generator=g).item()  # start right of the middle
    fwd = _fit_gaussian(p_mix, grid, "forward", mu0, steps, device)
    rev = _fit_gaussian(p_mix, grid, "reverse", mu0, steps, device)
    rev_mid = _fit_gaussian(p_mix, grid, "reverse", 0.0, steps, device)  # start in the middle
    result.tables.append(
        Table(
            "One Gaussian q fitted to p = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)",
            ["objective", "mean of q", "std of q", "final KL"],
            [
                [
                    "forward KL(p || q) (= maximum likelihood)",
                    f"{fwd[0]:.3f}",
                    f"{fwd[1]:.3f}",
                    "-",
                ],
                [
                    "reverse KL(q || p) (= variational inference)",
                    f"{rev[0]:.3f}",
                    f"{rev[1]:.3f}",
                    f"{rev[2]:.4f}",
                ],
                [
                    "reverse KL, started exactly in the middle",
                    f"{rev_mid[0]:.3f}",
                    f"{rev_mid[1]:.3f}",
                    f"{rev_mid[2]:.4f}",
                ],
                ["p's own mean and std", "0.000", f"{math.sqrt(4.25):.3f}", "-"],
            ],
        )
    )

    # ---- 3. MLE = minimising cross-entropy; perplexity ---------------------------------------
    true = torch.softmax(torch.randn(k, generator=g, dtype=f64), 0)
    n = 2000
    samples = torch.multinomial(true, n, replacement=True, generator=g).to(device)  # (n,)
    p_hat = torch.bincount(samples, minlength=k).to(f64) / n  # empirical distribution
    logits = torch.zeros(k, dtype=f64, device=device, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(ctx.pick(500, 2000)):
        nll = F.cross_entropy(logits.expand(n, k), samples)  # mean -log q(sample)
        opt.zero_grad()
        nll.backward()
        opt.step()
    q_mle = torch.softmax(logits.detach(), 0)
    nll_final = F.cross_entropy(logits.detach().expand(n, k), samples).item()
    mle_err = (q_mle - p_hat).abs().max().item()
    ce_emp = cross_entropy(p_hat, q_mle)
    h_hat = entropy(p_hat)
    ppl_model = math.exp(nll_final)
    ppl_uniform = math.exp(F.cross_entropy(torch.zeros(n, k, dtype=f64, device=device),
                                           samples).item())  # fmt: skip

    # ---- 4. index targets vs one-hot targets; label smoothing --------------------------------
    b, eps = 64, 0.1
    z = torch.randn(b, k, generator=g, dtype=f64).to(device)  # (B, K) logits
    idx = torch.randint(0, k, (b,), generator=g).to(device)  # (B,) class indices
    one_hot = F.one_hot(idx, k).to(f64)  # (B, K)
    ce_idx = F.cross_entropy(z, idx).item()
    ce_prob = F.cross_entropy(z, one_hot).item()
    ce_hand = -(one_hot * F.log_softmax(z, 1)).sum(1).mean().item()
    ls_builtin = F.cross_entropy(z, idx, label_smoothing=eps).item()
    ls_soft = F.cross_entropy(z, (1 - eps) * one_hot + eps / k).item()

    # ---- 5. mutual information ----------------------------------------------------------------
    joint = torch.softmax(torch.randn(16, generator=g, dtype=f64) * 1.5, 0).reshape(4, 4)
    joint = joint.to(device)
    px, py = joint.sum(1), joint.sum(0)
    mi_kl = kl(joint.flatten(), torch.outer(px, py).flatten())
    mi_h = entropy(px) + entropy(py) - entropy(joint.flatten())
    indep = torch.outer(px, py)
    mi_indep = kl(indep.flatten(), torch.outer(indep.sum(1), indep.sum(0)).flatten())
    copy = torch.diag(px)  # Y = X
    mi_copy = kl(copy.flatten(), torch.outer(copy.sum(1), copy.sum(0)).flatten())

    # plug-in (counting) estimates of MI from samples: close for a small discrete joint, but
    # biased upwards; for independent X, Y the bias is about (4 - 1)(4 - 1) / (2 n_mi) nats
    n_mi, reps = 2000, 50

    def plug_in_mi(table: torch.Tensor) -> list[float]:
        draws = torch.multinomial(table.flatten().cpu(), n_mi * reps, replacement=True,
                                  generator=g).reshape(reps, n_mi)  # fmt: skip
        out = []
        for r in range(reps):
            counts = torch.bincount(draws[r], minlength=16).to(f64).reshape(4, 4) / n_mi
            out.append(kl(counts.flatten(), torch.outer(counts.sum(1), counts.sum(0)).flatten()))
        return out

    mi_est = plug_in_mi(joint)
    mi_est_indep = plug_in_mi(indep)
    mi_est_mean = sum(mi_est) / reps
    mi_indep_mean = sum(mi_est_indep) / reps
    mi_bias_theory = 9 / (2 * n_mi)

    result.tables.append(
        Table(
            f"Maximum likelihood on {n} samples of a {k}-class categorical; targets; MI",
            ["quantity", "value"],
            [
                ["max |q_MLE - empirical frequencies|", f"{mle_err:.1e}"],
                ["final mean NLL", f"{nll_final:.6f}"],
                ["H(p_hat, q_MLE)", f"{ce_emp:.6f}"],
                ["H(p_hat)", f"{h_hat:.6f}"],
                ["perplexity exp(NLL): model / uniform", f"{ppl_model:.3f} / {ppl_uniform:.3f}"],
                [
                    "cross_entropy: indices / one-hot / by hand",
                    f"{ce_idx:.6f} / {ce_prob:.6f} / {ce_hand:.6f}",
                ],
                [f"label_smoothing={eps} / soft targets", f"{ls_builtin:.6f} / {ls_soft:.6f}"],
                ["I(X;Y) as KL / as H(X)+H(Y)-H(X,Y)", f"{mi_kl:.6f} / {mi_h:.6f}"],
                [
                    "I for independent X, Y / for Y = X (and H(X))",
                    f"{mi_indep:.1e} / {mi_copy:.6f} ({entropy(px):.6f})",
                ],
                [
                    f"plug-in I from {n_mi} samples (mean of {reps}): dependent / independent",
                    f"{mi_est_mean:.4f} (exact {mi_kl:.4f}) / {mi_indep_mean:.5f} "
                    f"(bias 9/(2n) = {mi_bias_theory:.5f})",
                ],
            ],
        )  # fmt: skip
    )
    result.metrics = {
        "mutual_information_plug_in": mi_est_mean,
        "mutual_information_plug_in_independent": mi_indep_mean,
        "H_p": h_p,
        "CE_pq": ce_pq,
        "KL_pq": kl_pq,
        "KL_qp": kl_qp,
        "forward_kl_fit_mean_std": list(fwd),
        "reverse_kl_fit_mean_std": list(rev),
        "mle_max_error": mle_err,
        "min_nll": nll_final,
        "entropy_empirical": h_hat,
        "perplexity_model": ppl_model,
        "perplexity_uniform": ppl_uniform,
        "mutual_information": mi_kl,
    }

    result.claim(
        "F.kl_div(q.log(), p) computes KL(p || q) = H(p, q) - H(p) (log-probabilities first, "
        "target second); swapping the arguments gives a different number.",
        identity_err < 1e-12
        and abs(torch_kl - kl_pq) < 1e-12
        and abs(torch_kl_swapped - kl_pq) > 0.01,
        f"F.kl_div {torch_kl:.6f} vs KL(p || q) {kl_pq:.6f} = H(p, q) - H(p) "
        f"{ce_pq - h_p:.6f}; swapped {torch_kl_swapped:.6f}",
    )
    result.claim(
        "KL is not symmetric: for a peaked p and a flat q, KL(p || q) and KL(q || p) differ "
        "(here by more than 20%).",
        abs(kl_pq - kl_qp) > 0.2 * min(kl_pq, kl_qp),
        f"KL(p || q) = {kl_pq:.4f}, KL(q || p) = {kl_qp:.4f}",
    )
    sd_p = math.sqrt(4.25)
    result.claim(
        "Forward KL(p || q) is mode-covering: the fitted Gaussian sits between the modes with "
        "p's overall spread (mean within 0.1 of 0, std within 5% of sqrt(4.25)).",
        abs(fwd[0]) < 0.1 and abs(fwd[1] - sd_p) < 0.05 * sd_p,
        f"forward fit: mean {fwd[0]:.3f}, std {fwd[1]:.3f} (target 0, {sd_p:.3f})",
    )
    result.claim(
        "Reverse KL(q || p) is mode-seeking: the fitted Gaussian locks onto one mode (mean "
        "within 0.1 of +2, std within 10% of the mode's 0.5), at KL close to ln 2.",
        abs(rev[0] - 2) < 0.1 and abs(rev[1] - 0.5) < 0.05 and abs(rev[2] - math.log(2)) < 0.01,
        f"reverse fit: mean {rev[0]:.3f}, std {rev[1]:.3f}, KL(q || p) {rev[2]:.4f} "
        f"(ln 2 = {math.log(2):.4f})",
    )
    result.claim(
        "Reverse KL is not convex in q's parameters: started exactly between the modes it "
        "stops at a broad symmetric fit, a stationary point with a higher KL than the one-mode "
        "fit.",
        abs(rev_mid[0]) < 0.05 and rev_mid[1] > 1.0 and rev_mid[2] > rev[2] + 0.05,
        f"from the middle: mean {rev_mid[0]:.3f}, std {rev_mid[1]:.3f}, KL {rev_mid[2]:.4f} "
        f"vs one-mode {rev[2]:.4f}",
    )
    result.claim(
        "Maximum likelihood = minimum cross-entropy: gradient descent on the NLL recovers the "
        "empirical frequencies, and the minimal mean NLL is their entropy H(p_hat).",
        mle_err < 1e-3 and abs(nll_final - h_hat) < 1e-5 and abs(nll_final - ce_emp) < 1e-9,
        f"max |q - p_hat| {mle_err:.1e}; NLL {nll_final:.6f}, H(p_hat) {h_hat:.6f}",
    )
    result.claim(
        f"Perplexity = exp(cross-entropy): exactly {k} for a uniform guess over {k} classes, "
        "and exp(H(p_hat)) for the fitted model.",
        abs(ppl_uniform - k) < 1e-9 and abs(ppl_model - math.exp(h_hat)) < 1e-4
        and ppl_model < k,
        f"uniform {ppl_uniform:.6f}; model {ppl_model:.4f} vs exp(H) {math.exp(h_hat):.4f}",
    )  # fmt: skip
    result.claim(
        "Sparse (index) and one-hot targets give the same cross-entropy; label_smoothing=eps "
        "equals soft targets (1 - eps) one_hot + eps / K.",
        abs(ce_idx - ce_prob) < 1e-12 and abs(ce_idx - ce_hand) < 1e-12
        and abs(ls_builtin - ls_soft) < 1e-12,
        f"indices {ce_idx:.6f}, one-hot {ce_prob:.6f}; smoothing {ls_builtin:.6f} vs "
        f"{ls_soft:.6f}",
    )  # fmt: skip
    result.claim(
        "Estimating mutual information by counting (plug-in) works for a small discrete joint "
        "(within 0.02 nats of the exact I(X;Y) = KL(p(x,y) || p(x)p(y))) but is biased "
        "upwards: for independent X, Y it reports I > 0, about (4-1)(4-1)/(2n) (within 30%).",
        abs(mi_kl - mi_h) < 1e-12
        and abs(mi_est_mean - mi_kl) < 0.02
        and abs(mi_indep_mean - mi_bias_theory) < 0.3 * mi_bias_theory,
        f"exact I {mi_kl:.4f}, plug-in {mi_est_mean:.4f}; independent: plug-in "
        f"{mi_indep_mean:.5f} vs 9/(2n) = {mi_bias_theory:.5f}",
    )
    return result
