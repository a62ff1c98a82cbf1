"""Self-attention is permutation-equivariant; sinusoidal positional encodings break that.

What it shows: self-attention computes every output as a weighted sum over all tokens, with
weights from pairwise dot products, and LayerNorm and the feed-forward block act on each
position alone; nothing in a Transformer encoder layer knows where a token is. Permuting the
input tokens therefore permutes the outputs exactly (to round-off), and after pooling the
model sees a bag of tokens: "dog bites man" and "man bites dog" give the same vector. Adding
positional encodings to the embeddings makes the input depend on position and the
equivariance is gone.

The sinusoidal encoding of Vaswani et al. 2017, section 3.5 (arXiv 1706.03762) is
PE(pos, 2i) = sin(pos w_i), PE(pos, 2i+1) = cos(pos w_i), w_i = 10000^(-2i/d). For each
frequency pair, moving k positions is a rotation by the angle k w_i, the same for every pos:
PE(pos + k) = PE(pos) M_k with M_k block-diagonal. The demo fits M_k by least squares over
all positions, finds those rotations, and checks the corollary that PE(pos) . PE(pos + k)
depends on the offset k only: the paper chose this function because it "would allow the
model to easily learn to attend by relative positions". (Implementations differ in layout:
the paper interleaves sin and cos; tensor2tensor concatenates all sines then all cosines.)

Other choices: learned absolute position embeddings (a trainable (max_len, d) table, as in
BERT and GPT-2; nothing beyond max_len) and rotary embeddings, RoPE (Su et al. 2021,
RoFormer, arXiv 2104.09864; used by LLaMA and most recent LLMs), which rotate q and k by
their positions inside attention so that the score q_m . k_n depends on m - n only; measured
here too. What really happens in decoders: a causal mask already breaks the permutation
symmetry (measured below), and decoder-only models without any positional encoding still
learn positions (Haviv et al. 2022, "Transformer Language Models without Positional
Encodings Still Learn Positional Information").

Run: dlprep demo positional-encoding
"""

from __future__ import annotations

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def sinusoidal(positions: int, d: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The (positions, d) table of Vaswani et al. (interleaved sin, cos) and its frequencies."""
    freqs = 10000.0 ** (-torch.arange(0, d, 2, dtype=dtype) / d)  # (d/2,) w_i
    angles = torch.arange(positions, dtype=dtype)[:, None] * freqs  # (P, d/2)
    pe = torch.zeros(positions, d, dtype=dtype)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe, freqs


def rotation(angles: torch.Tensor) -> torch.Tensor:
    """Block-diagonal M with row-vector convention: [sin a, cos a] @ M_i = [sin(a+b), cos(a+b)]."""
    d = 2 * angles.numel()
    m = torch.zeros(d, d, dtype=angles.dtype)
    cos, sin = torch.cos(angles), torch.sin(angles)
    m[0::2, 0::2] = torch.diag(cos)
    m[0::2, 1::2] = torch.diag(-sin)
    m[1::2, 0::2] = torch.diag(sin)
    m[1::2, 1::2] = torch.diag(cos)
    return m


def rope(x: torch.Tensor, positions: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of x (T, d) by the angle position * w_i (RoPE)."""
    angles = positions[:, None] * freqs  # (T, d/2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    even, odd = x[:, 0::2], x[:, 1::2]
    out = torch.empty_like(x)
    out[:, 0::2] = even * cos - odd * sin
    out[:, 1::2] = even * sin + odd * cos
    return out


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    dtype = torch.float64  # equivariance holds exactly in math; float64 shows round-off only
    d, heads, batch, steps = ctx.pick((16, 4, 4, 12), (64, 8, 16, 64))

    # two Transformer encoder layers (self-attention + FFN + LayerNorm), no dropout
    encoder = nn.Sequential(
        *[
            nn.TransformerEncoderLayer(
                d, heads, dim_feedforward=4 * d, dropout=0.0, batch_first=True, dtype=dtype
            )
            for _ in range(2)
        ]
    ).to(device)
    encoder.eval()
    pe, freqs = sinusoidal(steps, d, dtype)
    pe = pe.to(device)  # (T, d)

    # ---- 1. permuting the tokens permutes the outputs ---------------------------------
    x = torch.randn(batch, steps, d, generator=g, dtype=dtype).to(device)  # (B, T, d)
    perm = torch.randperm(steps, generator=g).to(device)
    with torch.no_grad():
        no_pe = (encoder(x[:, perm]) - encoder(x)[:, perm]).abs().max().item()
        with_pe = (encoder(x[:, perm] + pe) - encoder(x + pe)[:, perm]).abs().max().item()
        # a causal mask alone (no PE): token t sees tokens 0..t, which a permutation changes
        mask = nn.Transformer.generate_square_subsequent_mask(steps, device=device, dtype=dtype)
        causal_out = x
        permuted_out = x[:, perm]
        for layer in encoder:
            causal_out = layer(causal_out, src_mask=mask, is_causal=True)
            permuted_out = layer(permuted_out, src_mask=mask, is_causal=True)
        causal_no_pe = (permuted_out - causal_out[:, perm]).abs().max().item()

    # ---- 2. "dog bites man" vs "man bites dog" after mean pooling ------------------------
    vocab = {"dog": 0, "bites": 1, "man": 2}
    embed = nn.Embedding(len(vocab), d, dtype=dtype).to(device)
    sentences = {
        s: torch.tensor([[vocab[w] for w in s.split()]]) for s in ["dog bites man", "man bites dog"]
    }
    pooled = {}
    with torch.no_grad():
        for use_pe in (False, True):
            for s, ids in sentences.items():
                e = embed(ids.to(device))  # (1, 3, d)
                if use_pe:
                    e = e + pe[:3]
                pooled[(s, use_pe)] = encoder(e).mean(dim=1)  # (1, d): a sentence vector
    bag = {
        use_pe: (pooled[("dog bites man", use_pe)] - pooled[("man bites dog", use_pe)])
        .abs()
        .max()
        .item()
        for use_pe in (False, True)
    }

    # ---- 3. PE(pos + k) is a fixed rotation of PE(pos) ------------------------------------
    # enough positions for the slowest pair to turn a full circle: a well-posed fit
    positions = int(2 * torch.pi / freqs.min().item()) + 64
    table, _ = sinusoidal(positions, d, dtype)  # (P, d), on the CPU: a lstsq over P rows
    offset_rows = []
    fit_residual, fit_vs_rotation, dot_spread = 0.0, 0.0, 0.0
    for k in (1, 7, 50):
        src, dst = table[:-k], table[k:]  # pairs (PE(pos), PE(pos + k)) for every pos
        fitted = torch.linalg.lstsq(src, dst).solution  # (d, d): one M for all positions
        analytic = rotation(k * freqs)
        residual = (src @ fitted - dst).abs().max().item()
        vs_rot = (fitted - analytic).abs().max().item()
        angle_err = (
            torch.atan2(-fitted[0::2, 1::2].diagonal(), fitted[0::2, 0::2].diagonal()) - k * freqs
        )
        angle_err = torch.remainder(angle_err + torch.pi, 2 * torch.pi) - torch.pi
        dots = (src * dst).sum(-1)  # PE(pos) . PE(pos + k) for every pos
        offset_rows.append(
            [
                k,
                f"{residual:.1e}",
                f"{vs_rot:.1e}",
                f"{angle_err.abs().max().item():.1e}",
                f"{dots.mean().item():.4f}",
                f"{dots.std().item():.1e}",
            ]
        )
        fit_residual = max(fit_residual, residual)
        fit_vs_rotation = max(fit_vs_rotation, vs_rot)
        dot_spread = max(dot_spread, dots.std().item())

    # ---- 4. RoPE: the score depends on the relative position only ------------------------
    q = torch.randn(1, d, generator=g, dtype=dtype)
    k = torch.randn(1, d, generator=g, dtype=dtype)

    def rope_score(m: int, n: int) -> float:
        qm = rope(q, torch.tensor([float(m)], dtype=dtype), freqs)
        kn = rope(k, torch.tensor([float(n)], dtype=dtype), freqs)
        return (qm * kn).sum().item()

    pairs = [(3, 1), (10, 8), (250, 248), (5, 9), (105, 109)]
    scores = [rope_score(m, n) for m, n in pairs]
    rope_shift = max(
        abs(scores[1] - scores[0]), abs(scores[2] - scores[0]), abs(scores[4] - scores[3])
    )
    rope_offsets_differ = abs(scores[0] - scores[3])

    result = DemoResult(
        metrics={
            "equivariance_error_no_pe": no_pe,
            "equivariance_error_with_pe": with_pe,
            "equivariance_error_causal_no_pe": causal_no_pe,
            "dog_bites_man_vs_man_bites_dog_no_pe": bag[False],
            "dog_bites_man_vs_man_bites_dog_with_pe": bag[True],
            "rotation_fit_max_residual": fit_residual,
            "rotation_fit_vs_analytic": fit_vs_rotation,
            "pe_dot_std_over_positions": dot_spread,
            "rope_scores_m_n": {f"{m},{n}": s for (m, n), s in zip(pairs, scores, strict=True)},
        },
        tables=[
            Table(
                f"Permute the {steps} tokens, compare with the permuted outputs (float64, d={d})",
                ["input", "max |f(Px) - P f(x)|", "pooled 'dog bites man' - 'man bites dog'"],
                [
                    ["embeddings only", f"{no_pe:.1e}", f"{bag[False]:.1e}"],
                    ["embeddings + sinusoidal PE", f"{with_pe:.1e}", f"{bag[True]:.1e}"],
                    ["embeddings only, causal mask", f"{causal_no_pe:.1e}", "-"],
                ],
            ),
            Table(
                f"PE(pos + k) = PE(pos) M_k, one M_k fitted by least squares over {positions} "
                "positions",
                [
                    "k",
                    "max fit residual",
                    "max |M_k - rotation(k w)|",
                    "max angle error (rad)",
                    "mean PE(pos).PE(pos+k)",
                    "its std over pos",
                ],
                offset_rows,
            ),
            Table(
                "RoPE: score (R_m q) . (R_n k) for a fixed random q, k",
                ["m", "n", "n - m", "score"],
                [[m, n, n - m, f"{s:.10f}"] for (m, n), s in zip(pairs, scores, strict=True)],
            ),
        ],
        notes=[
            "Adding PE makes the encoder see (token, position) pairs; the permutation test "
            "then fails by a lot, which is the point: word order now matters.",
            "The rotation is exact for every position, so PE(pos).PE(pos+k) = sum_i cos(k w_i) "
            "depends on k only: relative offsets are linearly readable from absolute codes.",
        ],
    )
    result.claim(
        "Without positional information a Transformer encoder is permutation-equivariant: "
        "permuting the input tokens permutes the outputs exactly (float64 round-off).",
        no_pe < 1e-12,
        f"max |f(Px) - P f(x)| = {no_pe:.1e}",
    )
    result.claim(
        "So after pooling it reads a bag of words: 'dog bites man' = 'man bites dog'.",
        bag[False] < 1e-12,
        f"max |difference| of the pooled vectors = {bag[False]:.1e}",
    )
    result.claim(
        "Adding sinusoidal positional encodings breaks the symmetry: outputs change under "
        "permutation and the two sentences get different vectors.",
        with_pe > 1e-2 and bag[True] > 1e-2,
        f"max |f(Px + PE) - P f(x + PE)| = {with_pe:.2f}; sentences differ by {bag[True]:.2f}",
    )
    result.claim(
        "A causal mask alone also breaks it (token t sees only tokens 0..t), which is why "
        "decoder-only models can learn positions without any encoding.",
        causal_no_pe > 1e-2,
        f"max |f(Px) - P f(x)| with a causal mask = {causal_no_pe:.2f}",
    )
    result.claim(
        "For every frequency pair PE(pos + k) is a rotation of PE(pos) by k w_i, one matrix for "
        "all positions: the least-squares fit reproduces the table and equals the rotation.",
        fit_residual < 1e-9 and fit_vs_rotation < 1e-6,
        f"max residual {fit_residual:.1e}, max |fit - rotation| {fit_vs_rotation:.1e} "
        "for k = 1, 7, 50",
    )
    result.claim(
        "Hence PE(pos) . PE(pos + k) depends on k only, and with RoPE the attention score "
        "(R_m q).(R_n k) depends on n - m only.",
        dot_spread < 1e-9 and rope_shift < 1e-9 and rope_offsets_differ > 1e-6,
        f"std over pos of PE(pos).PE(pos+k) {dot_spread:.1e}; RoPE score change under a "
        f"shift {rope_shift:.1e} (vs {rope_offsets_differ:.2f} between offsets -2 and +4)",
    )
    return result
