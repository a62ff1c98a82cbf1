"""The feed-forward block stores facts (a key-value memory) and holds 2/3 of the weights.

What it shows: a one-layer Transformer must memorise a table of facts, (a, b) -> value, with
32 x 32 = 1024 pairs and a random value out of 16 for each. The value depends on the PAIR, so
neither token's embedding can hold it: attention must bring a and b together at one position,
and something must then look the pair up. Trained the same way at equal depth and width, the
model with a feed-forward block (FFN, width 4d) memorises every fact while the attention-only
model stores clearly fewer (its only nonlinearity per pair is the softmax and LayerNorm).
Switch off the trained model's FFN and its accuracy falls to near chance, far below what
attention alone stores at this width: the trained model keeps its facts in the FFN, the
picture of Geva et al. (2021): rows of W_1 act as keys matching input patterns and columns of
W_2 as the values they add to the residual stream.

What it does not show: that FFNs are magic. Widen the attention-only model to about the same
number of parameters and it stores most of the facts too in this toy; the FFN is where a
Transformer puts most of its per-token parameters. Measured with PyTorch's FLOP counter on an
nn.TransformerEncoderLayer (d = 256, FFN width 4d): the FFN holds 2/3 of the layer's weights
(8 d^2 of 12 d^2) and does 16 n d^2 of the 24 n d^2 + 4 n^2 d forward FLOPs, more than half
for n < 2d; beyond n = 2d attention as a whole costs more, and its n^2 term alone exceeds the
FFN beyond n = 4d. (Counted with the full n x n score matrix; a causal kernel that skips the
masked half halves the n^2 term and moves the crossover to n = 4d.)

Run: dlprep demo transformer-ffn
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

N_A = N_B = 32  # 1024 facts (a, b) -> value
N_VALUES = 16  # chance = 1/16


class FactModel(nn.Module):
    """Embed [a, b]; one Pre-LN block (attention, optionally an FFN); predict from position b."""

    def __init__(self, d: int, heads: int, ffn: bool):
        super().__init__()
        self.heads = heads
        self.tok = nn.Embedding(N_A + N_B, d)
        self.pos = nn.Parameter(0.02 * torch.randn(2, d))
        self.ln1 = nn.LayerNorm(d)
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.o = nn.Linear(d, d)
        self.ffn = None
        if ffn:
            self.ffn = nn.Sequential(
                nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)
            )
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, N_VALUES)
        self.ffn_on = True

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos  # (B, 2, d)
        batch, steps, d = x.shape
        h = self.ln1(x)
        # only the last position's output is used, so only its query is needed
        q = self.q(h[:, -1]).view(batch, self.heads, 1, -1)  # (B, heads, 1, d_k)
        k, v = self.kv(h).view(batch, steps, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        x = x[:, -1] + self.o((w @ v).reshape(batch, d))  # attention brings a and b together
        if self.ffn is not None and self.ffn_on:
            x = x + self.ffn(x)  # per-position lookup: the key-value memory
        return self.head(self.ln_f(x))  # (B, N_VALUES)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_and_score(d, ffn, idx, values, steps, seed, device) -> tuple[FactModel, float]:
    torch.manual_seed(seed)
    model = FactModel(d, heads=4, ffn=ffn).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):  # full batch: all facts every step
        loss = F.cross_entropy(model(idx), values)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = (model(idx).argmax(-1) == values).float().mean().item()
    return model, acc


def ffn_share_of_layer(d: int, n: int) -> tuple[float, float]:
    """FFN share of an nn.TransformerEncoderLayer's parameters and forward FLOPs (meta device)."""
    layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True, device="meta")
    ffn_params = sum(p.numel() for p in (*layer.linear1.parameters(), *layer.linear2.parameters()))
    attn_params = sum(p.numel() for p in layer.self_attn.parameters())
    x = torch.empty(1, n, d, device="meta")  # shapes only: FLOPs are counted, nothing computed
    with FlopCounterMode(display=False) as counter:
        layer.self_attn(x, x, x, need_weights=False)
    attn_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        layer.linear2(layer.activation(layer.linear1(x)))
    ffn_flops = counter.get_total_flops()
    return ffn_params / (ffn_params + attn_params), ffn_flops / (ffn_flops + attn_flops)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    d = 16
    steps = ctx.pick(300, 600)
    a = torch.arange(N_A).repeat_interleave(N_B)
    b = torch.arange(N_B).repeat(N_A) + N_A  # b has its own token ids
    idx = torch.stack([a, b], dim=1).to(device)  # (1024, 2)
    values = torch.randint(0, N_VALUES, (N_A * N_B,), generator=g).to(device)

    attn_only, acc_attn = train_and_score(d, False, idx, values, steps, ctx.seed, device)
    with_ffn, acc_ffn = train_and_score(d, True, idx, values, steps, ctx.seed, device)
    with_ffn.ffn_on = False  # the same trained model, its FFN switched off
    with torch.no_grad():
        acc_ablated = (with_ffn(idx).argmax(-1) == values).float().mean().item()
    with_ffn.ffn_on = True
    # the widest attention-only model (heads divide d) with no more parameters than the FFN one
    d_wide = max(
        w for w in range(d, 8 * d, 4) if n_params(FactModel(w, 4, False)) <= n_params(with_ffn)
    )
    wide, acc_wide = train_and_score(d_wide, False, idx, values, steps, ctx.seed, device)

    p_attn, p_ffn, p_wide = n_params(attn_only), n_params(with_ffn), n_params(wide)
    ffn_only = sum(p.numel() for p in with_ffn.ffn.parameters())
    share = {n: ffn_share_of_layer(256, n) for n in (128, 512, 2048)}
    facts = N_A * N_B
    result = DemoResult(
        metrics={
            "facts": facts,
            "accuracy": {
                "attention_only": acc_attn,
                "attention_plus_ffn": acc_ffn,
                "attention_plus_ffn_ffn_switched_off": acc_ablated,
                f"attention_only_d{d_wide}": acc_wide,
            },
            "parameters": {
                "attention_only": p_attn,
                "attention_plus_ffn": p_ffn,
                f"attention_only_d{d_wide}": p_wide,
            },
            "ffn_share_params_flops_d256": {str(n): list(s) for n, s in share.items()},
        },
        tables=[
            Table(
                f"{facts} facts (a, b) -> one of {N_VALUES} values, one layer, {steps} full-batch "
                "Adam steps (chance 1/16)",
                ["model", "d", "parameters", "facts stored (train accuracy)"],
                [
                    ["attention only", d, p_attn, f"{acc_attn:.3f}"],
                    ["attention + FFN (4d)", d, p_ffn, f"{acc_ffn:.3f}"],
                    [
                        "  same model, FFN switched off",
                        d,
                        p_ffn - ffn_only,
                        f"{acc_ablated:.3f}",
                    ],
                    ["attention only, widened", d_wide, p_wide, f"{acc_wide:.3f}"],
                ],
            ),
            Table(
                "FFN share of an nn.TransformerEncoderLayer (d = 256, FFN 4d), measured",
                [
                    "sequence length n",
                    "share of parameters",
                    "share of forward FLOPs",
                    "16d / (24d + 4n)",
                ],
                [
                    [n, f"{p:.3f}", f"{f:.3f}", f"{16 * 256 / (24 * 256 + 4 * n):.3f}"]
                    for n, (p, f) in share.items()
                ],
            ),
        ],
        notes=[
            "Attention alone is not linear here (softmax weights depend on the pair, and "
            "LayerNorm divides), so it does store some facts; what it lacks is cheap per-token "
            "capacity.",
            "FFN FLOPs: two matmuls of d x 4d per token, 16 n d^2 (2 FLOPs per multiply-add); "
            "attention: Q, K, V, O projections 8 n d^2 plus Q K^T and P V 4 n^2 d.",
        ],
    )
    result.claim(
        "At equal depth and width, the model with an FFN block memorises (almost) every fact, "
        "the attention-only model clearly fewer.",
        acc_ffn > 0.98 and acc_attn < acc_ffn - 0.1,
        f"facts stored: {acc_ffn:.3f} with FFN, {acc_attn:.3f} attention only (d = {d})",
    )
    result.claim(
        "The trained model keeps its facts in the FFN: switching its FFN off drops accuracy "
        "to near chance, far below what attention alone stores at the same width.",
        acc_ablated < 0.3 and acc_ablated < acc_attn - 0.3,
        f"{acc_ffn:.3f} -> {acc_ablated:.3f} (chance {1 / N_VALUES:.3f}; attention-only model "
        f"{acc_attn:.3f})",
    )
    result.claim(
        "Capacity is largely a matter of parameters: an attention-only model widened to about "
        "the FFN model's parameter count stores far more facts than at equal width.",
        p_wide <= p_ffn and acc_wide > acc_attn + 0.05,
        f"d = {d_wide}, {p_wide} parameters (FFN model {p_ffn}): {acc_wide:.3f} vs "
        f"{acc_attn:.3f} at d = {d}",
    )
    p128, f128 = share[128]
    p2048, f2048 = share[2048]
    result.claim(
        "The FFN holds 2/3 of a Transformer layer's weights and does most of its FLOPs at short "
        "context (16d / (24d + 4n)), less than half once n > 2d.",
        abs(p128 - 2 / 3) < 0.01 and f128 > 0.55 and f2048 < 0.5,
        f"d = 256: parameters {p128:.3f}; FLOPs {f128:.3f} at n = 128, {share[512][1]:.3f} at "
        f"n = 512, {f2048:.3f} at n = 2048",
    )
    return result
