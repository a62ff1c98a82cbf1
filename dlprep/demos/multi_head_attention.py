"""Multi-head self-attention written out, matched against nn.MultiheadAttention and SDPA.

What it shows: multi-head attention is four linear maps and a reshape. Project the input to
queries, keys and values (one (d, d) matrix each, stored stacked in PyTorch's in_proj_weight),
split the model dimension into h heads of d_k = d / h, i.e. reshape (B, T, d) ->
(B, T, h, d_k) -> (B, h, T, d_k), run scaled dot-product attention softmax(Q K^T / sqrt(d_k)) V
in every head independently, concatenate the heads back to (B, T, d) and apply the output
projection W_O. With the weights copied from nn.MultiheadAttention(batch_first=True) the
hand-written version gives the same outputs and the same head-averaged attention weights to
float64 round-off, and each head's output equals F.scaled_dot_product_attention's. Masks work
the same way: a causal mask and a key-padding mask set the masked scores to -inf before the
softmax. The parameter count is 4 d^2 + 4 d (W_Q, W_K, W_V, W_O and their biases), whatever h
is: more heads split the same width, they do not add parameters.

Watch the mask conventions: in nn.MultiheadAttention a boolean attn_mask / key_padding_mask
marks with True the positions NOT allowed to attend; in F.scaled_dot_product_attention a
boolean attn_mask marks with True the positions that ARE allowed. (PyTorch docs, torch.nn.
MultiheadAttention and torch.nn.functional.scaled_dot_product_attention.)

Run: dlprep demo multi-head-attention
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def attention_by_hand(
    x: torch.Tensor,
    mha: nn.MultiheadAttention,
    blocked: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """Self-attention of x (B, T, d) with mha's weights; blocked (B, T, T): True = may not attend.

    Returns the output (B, T, d), the head-averaged weights (B, T, T) and, for the SDPA check,
    the per-head q, k, v (B, h, T, d_k) and per-head outputs (B, h, T, d_k).
    """
    batch, steps, d = x.shape
    h = mha.num_heads
    d_k = d // h
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)  # each (d, d), stacked as [W_Q; W_K; W_V]
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)  # each (d,)

    def split_heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(batch, steps, h, d_k).transpose(1, 2)  # (B, T, d) -> (B, h, T, d_k)

    q = split_heads(x @ w_q.T + b_q)  # (B, h, T, d_k)
    k = split_heads(x @ w_k.T + b_k)
    v = split_heads(x @ w_v.T + b_v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (B, h, T, T)
    if blocked is not None:
        scores = scores.masked_fill(blocked[:, None], float("-inf"))  # same mask for every head
    weights = torch.softmax(scores, dim=-1)  # (B, h, T, T): each row sums to 1
    heads = weights @ v  # (B, h, T, d_k)
    concat = heads.transpose(1, 2).reshape(batch, steps, d)  # (B, T, h * d_k) = (B, T, d)
    out = concat @ mha.out_proj.weight.T + mha.out_proj.bias  # (B, T, d)
    return out, weights.mean(dim=1), (q, k, v, heads)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    batch, steps, d, h = ctx.pick((4, 10, 32, 4), (16, 64, 128, 8))
    dtype = torch.float64  # to see round-off, not float32 noise

    mha = nn.MultiheadAttention(d, h, batch_first=True, dtype=dtype).to(device).eval()
    with torch.no_grad():  # random biases too (PyTorch initialises them to zero)
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    x = torch.randn(batch, steps, d, generator=g, dtype=dtype).to(device)  # (B, T, d)

    # masks, in nn.MultiheadAttention's convention: True = this key is blocked
    causal = torch.triu(torch.ones(steps, steps, dtype=torch.bool, device=device), diagonal=1)
    lengths = torch.randint(steps // 2, steps + 1, (batch,), generator=g)
    lengths[0] = steps
    padded = (torch.arange(steps)[None, :] >= lengths[:, None]).to(device)  # (B, T) True = pad

    cases = {
        "no mask": ({}, None),
        "causal": ({"attn_mask": causal}, causal.expand(batch, steps, steps)),
        "key padding": ({"key_padding_mask": padded}, padded[:, None, :].expand(-1, steps, -1)),
        "causal + key padding": (
            {"attn_mask": causal, "key_padding_mask": padded},
            causal | padded[:, None, :],
        ),
    }
    rows = []
    errors = {}
    with torch.no_grad():
        unmasked_out, _ = mha(x, x, x, need_weights=False)
        for name, (kwargs, blocked) in cases.items():
            ref_out, ref_w = mha(x, x, x, need_weights=True, average_attn_weights=True, **kwargs)
            fast_out, _ = mha(x, x, x, need_weights=False, **kwargs)  # may take a fused kernel
            out, w, (q, k, v, heads) = attention_by_hand(x, mha, blocked)
            # SDPA per head: its boolean mask means True = ALLOWED, the opposite convention
            allowed = None if blocked is None else ~blocked[:, None]  # (B, 1, T, T)
            sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B, h, T, d_k)
            errors[name] = {
                "output": (out - ref_out).abs().max().item(),
                "output_no_weights": (out - fast_out).abs().max().item(),
                "weights": (w - ref_w).abs().max().item(),
                "sdpa_heads": (heads - sdpa).abs().max().item(),
            }
            # evidence that the mask is doing something: how far it moves the output
            moved = (ref_out - unmasked_out).abs().max().item()
            errors[name]["changed_by_mask"] = moved
            rows.append([name, *(f"{e:.1e}" for e in errors[name].values())])
        # the causal mask through SDPA's own flag
        _, _, (q, k, v, heads) = attention_by_hand(x, mha, causal.expand(batch, steps, steps))
        is_causal_err = (heads - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs()
        is_causal_err = is_causal_err.max().item()
        # a masked key really gets zero weight
        _, w_masked, _ = attention_by_hand(x, mha, cases["causal + key padding"][1])
        leaked = w_masked.masked_select(cases["causal + key padding"][1]).abs().max().item()

    n_params = sum(p.numel() for p in mha.parameters())
    other_h = 1 if h != 1 else 2
    n_params_other_h = sum(p.numel() for p in nn.MultiheadAttention(d, other_h).parameters())

    result = DemoResult(
        metrics={
            "batch_steps_d_heads": [batch, steps, d, h],
            "max_abs_diff": errors,
            "sdpa_is_causal_max_abs_diff": is_causal_err,
            "max_weight_on_masked_keys": leaked,
            "parameters": n_params,
            "parameters_formula": 4 * d * d + 4 * d,
            f"parameters_with_{other_h}_heads": n_params_other_h,
        },
        tables=[
            Table(
                f"Hand-written vs PyTorch, float64 (B={batch}, T={steps}, d={d}, h={h})",
                [
                    "mask",
                    "output vs MHA",
                    "vs MHA, need_weights=False",
                    "avg weights vs MHA",
                    "heads vs SDPA",
                    "(output moved by the mask)",
                ],
                rows,
            ),
            Table(
                "Parameters of nn.MultiheadAttention",
                ["d", "heads", "measured", "4 d² + 4 d"],
                [
                    [d, h, n_params, 4 * d * d + 4 * d],
                    [d, other_h, n_params_other_h, 4 * d * d + 4 * d],
                ],
            ),
        ],
        notes=[
            "need_weights=True returns the weights averaged over heads "
            "(average_attn_weights=True, the default); pass False for (B, h, T, T).",
            "Biases were randomised here so that the check covers them (PyTorch starts them at 0).",
        ],
    )
    hand_vs_mha = max(
        max(e["output"], e["output_no_weights"], e["weights"]) for e in errors.values()
    )
    mask_effect = min(e["changed_by_mask"] for name, e in errors.items() if name != "no mask")
    result.claim(
        "Project, split into heads (B, h, T, d_k), softmax(QK^T/sqrt(d_k))V per head, concat, "
        "output projection: exactly nn.MultiheadAttention's outputs and head-averaged weights "
        "(float64, < 1e-12), with no mask, a causal mask, a key-padding mask and both.",
        hand_vs_mha < 1e-12 and mask_effect > 1e-3,
        f"worst |diff| {hand_vs_mha:.1e}; the masks move the output by at least {mask_effect:.2f}",
    )
    result.claim(
        "Each head is F.scaled_dot_product_attention (with its mask convention inverted: True "
        "= allowed), and is_causal=True equals the explicit causal mask.",
        max(e["sdpa_heads"] for e in errors.values()) < 1e-12 and is_causal_err < 1e-12,
        f"worst |diff| {max(e['sdpa_heads'] for e in errors.values()):.1e}; "
        f"is_causal {is_causal_err:.1e}",
    )
    result.claim(
        "Masked keys get exactly zero attention weight (the -inf score becomes exp(-inf) = 0).",
        leaked == 0.0,
        f"largest weight on a masked key: {leaked:.1e}",
    )
    result.claim(
        "nn.MultiheadAttention has 4 d^2 + 4 d parameters, independent of the number of heads.",
        n_params == n_params_other_h == 4 * d * d + 4 * d,
        f"{n_params} with {h} heads, {n_params_other_h} with {other_h}; 4d²+4d = "
        f"{4 * d * d + 4 * d}",
    )
    return result
