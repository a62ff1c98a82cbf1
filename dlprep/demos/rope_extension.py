"""RoPE beyond the training length: extrapolated attention scores blow up; interpolation doesn't.

What it shows, measured. Rotary position embeddings (RoPE; Su et al. 2021, arXiv 2104.09864)
rotate each 2-d pair j of a query or key at position m by the angle m theta_j, with
theta_j = 10000^(-2j/d). Treating each pair as a complex number, the attention score is
q_m . k_n = Re sum_j q_j conj(k_j) e^{i (m - n) theta_j}: it depends on the positions only
through the distance s = m - n. The demo checks that property exactly (float64).

So a head's positional behaviour is a function a(s) = Re sum_j h_j e^{i s theta_j} with
complex coefficients h_j set by its weights. Training only ever constrains a(s) on the
distances it saw, 0..L-1. Following the argument of Position Interpolation (Chen et al.
2023, arXiv 2306.15595, section 2), the demo fits such an a(s) (d = 64, 32 frequency
pairs, ridge-regularised like trained weights) to a typical local head: high scores for the
4 nearest tokens, low elsewhere, on s = 0..L-1 with L = 64. Then:

- Extrapolation: at distances L..4L-1 the same coefficients give scores never constrained by
  training, which exceed the largest score seen in range; in a softmax over a 4L context
  those far, meaningless keys take the attention away from the near tokens the head was
  trained to attend to. This is why perplexity explodes past the training length.
- Position Interpolation: divide positions by 4 (the extension factor), so every distance in
  the 4L context maps to [0, L): a(s / 4) stays within the trained range of scores (the PI
  paper proves a bound for interpolation; none exists for extrapolation) and the attention
  stays local. The price: distances are compressed, the 4 nearest trained distances now
  cover 16 tokens and neighbouring tokens are only a quarter step apart, which is why PI
  still needs a short fine-tune (about 1000 steps in the paper) at the new length.

This is a fitted score function, not a trained LLM: it isolates the mechanism. NTK-aware
scaling, YaRN and raising the RoPE base change the frequencies instead of the positions;
ALiBi uses a linear distance penalty, which meets no unseen position values at longer
lengths and degrades gracefully there (largely by keeping attention local).

Run: dlprep demo rope-extension
"""

from __future__ import annotations

import torch

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table
from dlprep.demos.positional_encoding import rope  # the same rotation, introduced there

STATISTICAL = True


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    f64 = dict(dtype=torch.float64, device=device)
    d, L, factor, base = 64, 64, 4, 10000.0
    theta = base ** (-torch.arange(0, d, 2, **f64) / d)  # (32,) rotation speeds

    # ---- 1. the score depends only on the distance m - n ------------------------------------
    n_pairs = ctx.pick(200, 2000)
    q = torch.randn(n_pairs, d, generator=g, dtype=torch.float64).to(device)
    k = torch.randn(n_pairs, d, generator=g, dtype=torch.float64).to(device)
    m = torch.randint(0, factor * L, (n_pairs,), generator=g).to(device, torch.float64)
    n = torch.randint(0, factor * L, (n_pairs,), generator=g).to(device, torch.float64)
    t = torch.randint(0, factor * L, (n_pairs,), generator=g).to(device, torch.float64)
    score = (rope(q, m, theta) * rope(k, n, theta)).sum(1)
    shifted = (rope(q, m + t, theta) * rope(k, n + t, theta)).sum(1)  # both moved by t
    rel_err = (score - shifted).abs().max().item()

    # ---- 2. a head's score as a function of distance, fitted on 0..L-1 ----------------------
    def basis(s: torch.Tensor) -> torch.Tensor:  # a(s) = basis(s) @ h, h = (Re h_j, Im h_j)
        ang = s[:, None] * theta[None, :]
        return torch.cat([ang.cos(), -ang.sin()], 1)  # (len(s), d)

    s_train = torch.arange(L, **f64)
    near = 4
    target = torch.where(s_train < near, 2.0, -1.0)  # a local head: attend to 4 nearest
    target = target + 0.3 * torch.randn(L, generator=g, dtype=torch.float64).to(device)
    A = basis(s_train)  # (L, d)
    h = torch.linalg.solve(A.T @ A + 1e-3 * torch.eye(d, **f64), A.T @ target)  # ridge fit
    a_train = A @ h
    in_range_max = a_train.max().item()

    s_long = torch.arange(factor * L, **f64)  # every distance in a 4L context
    a_extra = basis(s_long) @ h  # positions as they are
    a_pi = basis(s_long / factor) @ h  # Position Interpolation: positions / 4
    beyond_max = a_extra[L:].max().item()
    pi_abs_max = a_pi.abs().max().item()

    beta = 4.0  # sharpness of the softmax (the scale of q . k in a trained head)
    w_train = torch.softmax(beta * a_train, 0)
    w_extra = torch.softmax(beta * a_extra, 0)
    w_pi = torch.softmax(beta * a_pi, 0)
    mass = {
        "trained length L, nearest 4": w_train[:near].sum().item(),
        "4L, extrapolation, nearest 4": w_extra[:near].sum().item(),
        "4L, extrapolation, distances >= L": w_extra[L:].sum().item(),
        "4L, interpolation, nearest 16 (= 4 scaled)": w_pi[: near * factor].sum().item(),
        "4L, interpolation, nearest 4": w_pi[:near].sum().item(),
    }
    result.tables.append(
        Table(
            f"A local RoPE head's score a(s), fitted on distances 0..{L - 1}, used on a "
            f"{factor * L}-token context",
            ["quantity", "value"],
            [
                ["largest score on trained distances", f"{in_range_max:.2f}"],
                [
                    f"largest score at distances {L}..{factor * L - 1} (extrapolation)",
                    f"{beyond_max:.2f}",
                ],
                ["largest |score| with positions / 4 (interpolation)", f"{pi_abs_max:.2f}"],
                *([f"attention mass: {k}", f"{v:.3f}"] for k, v in mass.items()),
            ],
        )  # fmt: skip
    )
    step = 4
    result.curves.append(
        Curve(
            f"Score vs distance (every {step}th): trained range ends at {L}",
            "distance",
            {
                "extrapolation": a_extra[::step].tolist(),
                "interpolation (positions / 4)": a_pi[::step].tolist(),
            },
        )
    )

    trained_abs_max = a_train.abs().max().item()
    result.metrics = {
        "relative_property_max_error": rel_err,
        "in_range_max_score": in_range_max,
        "extrapolated_max_score": beyond_max,
        "interpolated_max_abs_score": pi_abs_max,
        "trained_max_abs_score": trained_abs_max,
        "attention_mass": mass,
    }
    result.claim(
        "With RoPE, q_m . k_n depends only on the distance m - n: shifting both positions "
        "by the same amount leaves every score unchanged (float64 round-off).",
        rel_err < 1e-9,
        f"max |change| over {n_pairs} random (q, k, m, n, shift): {rel_err:.1e}",
    )
    result.claim(
        f"Beyond the trained length the same head's scores are unconstrained: at distances "
        f"{L}..{factor * L - 1} they exceed the largest score on trained distances.",
        beyond_max > in_range_max,
        f"largest score: trained distances {in_range_max:.2f}, beyond {beyond_max:.2f}",
    )
    result.claim(
        f"So at {factor}x the context, extrapolated attention leaves the near tokens (their "
        "mass falls below half of what it was in training) and goes to far keys.",
        mass["4L, extrapolation, nearest 4"] < 0.5 * mass["trained length L, nearest 4"],
        f"mass on the 4 nearest: in training {mass['trained length L, nearest 4']:.3f}, "
        f"extrapolated {mass['4L, extrapolation, nearest 4']:.3f}; on distances >= {L}: "
        f"{mass['4L, extrapolation, distances >= L']:.3f}",
    )
    result.claim(
        "Position Interpolation (positions / 4) keeps every score within the trained range "
        "and the attention local (>= 90% on the 16 tokens that map to the 4 nearest "
        "distances).",
        pi_abs_max <= trained_abs_max * 1.05
        and mass["4L, interpolation, nearest 16 (= 4 scaled)"] >= 0.9,
        f"max |score|: interpolated {pi_abs_max:.2f}, trained {trained_abs_max:.2f}; mass on "
        f"nearest 16: {mass['4L, interpolation, nearest 16 (= 4 scaled)']:.3f}",
    )
    result.notes.append(
        "PI's price is resolution: the head now spreads over 16 tokens instead of 4 (mass on "
        f"the 4 nearest: {mass['4L, interpolation, nearest 4']:.3f} vs "
        f"{mass['trained length L, nearest 4']:.3f} in training), so models are fine-tuned "
        "briefly at the new length."
    )
    return result
