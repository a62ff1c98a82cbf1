"""Cross-attention and multi-query / grouped-query attention, measured on the tensors.

What it shows, part 1 (cross-attention): in an encoder-decoder Transformer the decoder's
cross-attention takes its queries from the decoder (T target positions) and its keys and values
from the encoder output (S source positions). The score matrix is (T, S), so the output has one
row per QUERY: its length follows the target, whatever the source length. Every target position
may read every source position (no causal mask: the whole source is known); the only mask is on
the key side, for source padding, and with it padded source positions get exactly zero weight,
so padding the source changes nothing. Each query row is computed independently, which is why
the encoder's keys and values can be projected once and reused at every decoding step: feeding
the queries one at a time against the cached K/V gives the same rows. The hand-written version
matches nn.MultiheadAttention(query=decoder, key=value=encoder) to float64 round-off.

Part 2 (MQA / GQA): multi-head attention (MHA) gives each of the h query heads its own key and
value head. Grouped-query attention (Ainslie et al. 2023) keeps h query heads but only g K/V
heads, each shared by a group of h/g consecutive query heads; multi-query attention (Shazeer 2019)
is g = 1. What shrinks is the KV cache, 2 x layers x g x d_head x tokens x bytes (h/g times smaller
than MHA's: bookkeeping, read here off the cached tensors), and slightly the parameters (W_K
and W_V become d x g d_head). What does not change: the number of query heads and the size of
the score tensor (B, h, T, T), i.e. the attention FLOPs. What is checked numerically: attention
run straight from the g-head cache with F.scaled_dot_product_attention(..., enable_gqa=True)
equals the hand-written sharing (each K/V head repeated h/g times with repeat_interleave, so
query head i reads K/V head i // (h/g); the PyTorch docs give the same repeat_interleave as
SDPA's reference semantics), and GQA with g = h equals nn.MultiheadAttention with the same
weights.

Run: dlprep demo attention-variants
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def attend(q, k, v, blocked=None):
    """softmax(q k^T / sqrt(d_k)) v over the last two dims; blocked: True = may not attend."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if blocked is not None:
        scores = scores.masked_fill(blocked, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def cross_attention_by_hand(dec, enc, mha: nn.MultiheadAttention, src_pad=None):
    """Queries from dec (B, T, d); keys and values from enc (B, S, d); src_pad (B, S) True = pad."""
    batch, t_q, d = dec.shape
    s = enc.shape[1]
    h = mha.num_heads
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
    q = (dec @ w_q.T + b_q).view(batch, t_q, h, -1).transpose(1, 2)  # (B, h, T, d_k)
    k = (enc @ w_k.T + b_k).view(batch, s, h, -1).transpose(1, 2)  # (B, h, S, d_k)
    v = (enc @ w_v.T + b_v).view(batch, s, h, -1).transpose(1, 2)  # (B, h, S, d_k)
    blocked = None if src_pad is None else src_pad[:, None, None, :]  # same for every query
    heads, weights = attend(q, k, v, blocked)  # (B, h, T, d_k), (B, h, T, S)
    out = heads.transpose(1, 2).reshape(batch, t_q, d) @ mha.out_proj.weight.T
    return out + mha.out_proj.bias, weights, (k, v)


class GroupedQueryAttention(nn.Module):
    """h query heads, g key/value heads; query head i uses K/V head i // (h / g)."""

    def __init__(self, d: int, h: int, g: int, dtype=torch.float64):
        super().__init__()
        assert h % g == 0
        self.h, self.g, self.d_head = h, g, d // h
        self.w_q = nn.Linear(d, h * self.d_head, dtype=dtype)
        self.w_k = nn.Linear(d, g * self.d_head, dtype=dtype)  # g heads, not h
        self.w_v = nn.Linear(d, g * self.d_head, dtype=dtype)
        self.w_o = nn.Linear(h * self.d_head, d, dtype=dtype)

    def forward(self, x, use_sdpa: bool = False):
        batch, steps, _ = x.shape
        q = self.w_q(x).view(batch, steps, self.h, self.d_head).transpose(1, 2)  # (B, h, T, dh)
        k = self.w_k(x).view(batch, steps, self.g, self.d_head).transpose(1, 2)  # (B, g, T, dh)
        v = self.w_v(x).view(batch, steps, self.g, self.d_head).transpose(1, 2)
        cache = (k, v)  # what a decoder keeps per layer: g heads, not h
        if use_sdpa:
            heads = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            scores_shape = None
        else:
            # share: each K/V head serves h/g consecutive query heads
            k_rep = k.repeat_interleave(self.h // self.g, dim=1)  # (B, h, T, dh)
            v_rep = v.repeat_interleave(self.h // self.g, dim=1)
            future = torch.ones(steps, steps, dtype=torch.bool, device=x.device).triu(1)
            heads, weights = attend(q, k_rep, v_rep, future)
            scores_shape = list(weights.shape)  # (B, h, T, T) whatever g is
        out = self.w_o(heads.transpose(1, 2).reshape(batch, steps, -1))
        return out, cache, scores_shape


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    dtype = torch.float64  # to see round-off, not float32 noise
    batch, d, h = 2, 64, 8
    t_tgt, s_src = 5, 9  # target (query) and source (key/value) lengths differ on purpose

    # ================= part 1: cross-attention ==========================================
    mha = nn.MultiheadAttention(d, 4, batch_first=True, dtype=dtype).to(device).eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_(generator=g)
        mha.out_proj.bias.normal_(generator=g)
    dec = torch.randn(batch, t_tgt, d, generator=g, dtype=dtype).to(device)  # decoder states
    enc = torch.randn(batch, s_src, d, generator=g, dtype=dtype).to(device)  # encoder output
    enc_long = torch.randn(batch, 3 * s_src, d, generator=g, dtype=dtype).to(device)
    with torch.no_grad():
        ref_out, ref_w = mha(dec, enc, enc, average_attn_weights=False)  # Q=dec, K=V=enc
        out, w, (k_cache, v_cache) = cross_attention_by_hand(dec, enc, mha)
        hand_err = max((out - ref_out).abs().max().item(), (w - ref_w).abs().max().item())
        out_long, w_long, _ = cross_attention_by_hand(dec, enc_long, mha)

        # source padding: append 4 junk positions, mask them on the key side
        junk = torch.randn(batch, 4, d, generator=g, dtype=dtype).to(device)
        enc_padded = torch.cat([enc, junk], dim=1)  # (B, S + 4, d)
        pad = torch.zeros(batch, s_src + 4, dtype=torch.bool, device=device)
        pad[:, s_src:] = True
        out_pad, w_pad, _ = cross_attention_by_hand(dec, enc_padded, mha, pad)
        ref_pad, _ = mha(dec, enc_padded, enc_padded, key_padding_mask=pad)
        pad_weight = w_pad[..., s_src:].abs().max().item()
        pad_change = (out_pad - out).abs().max().item()
        pad_vs_mha = (out_pad - ref_pad).abs().max().item()
        out_junk, _, _ = cross_attention_by_hand(dec, enc_padded, mha)  # forgot the mask
        junk_change = (out_junk - out).abs().max().item()

        # every target position sees every source position: no causal structure
        min_weight = w.min().item()

        # queries one at a time against the cached encoder K/V = the full computation
        w_q, _, _ = mha.in_proj_weight.chunk(3)
        b_q, _, _ = mha.in_proj_bias.chunk(3)
        rows = []
        for t in range(t_tgt):
            q_t = (dec[:, t : t + 1] @ w_q.T + b_q).view(batch, 1, 4, -1).transpose(1, 2)
            head_t, _ = attend(q_t, k_cache, v_cache)  # (B, h, 1, d_k)
            row = head_t.transpose(1, 2).reshape(batch, 1, d) @ mha.out_proj.weight.T
            rows.append(row + mha.out_proj.bias)
        stepwise_err = (torch.cat(rows, dim=1) - out).abs().max().item()

    # ================= part 2: MHA, GQA, MQA ============================================
    steps = ctx.pick(16, 64)
    x = torch.randn(batch, steps, d, generator=g, dtype=dtype).to(device)
    rows_gqa, cache_bytes, params, scores_shapes, sdpa_err = [], {}, {}, {}, {}
    models = {}
    for kv_heads in (h, 4, 2, 1):
        torch.manual_seed(ctx.seed)
        model = GroupedQueryAttention(d, h, kv_heads, dtype).to(device)
        models[kv_heads] = model
        with torch.no_grad():
            out_g, (k, v), shape = model(x)
            out_sdpa, _, _ = model(x, use_sdpa=True)
        sdpa_err[kv_heads] = (out_g - out_sdpa).abs().max().item()
        per_token = (k.numel() + v.numel()) * k.element_size() // (batch * steps)  # bytes
        cache_bytes[kv_heads] = per_token
        params[kv_heads] = sum(p.numel() for p in model.parameters())
        scores_shapes[kv_heads] = shape
        name = {h: "MHA", 1: "MQA"}.get(kv_heads, "GQA")
        rows_gqa.append(
            [
                f"{name} (g = {kv_heads})",
                h,
                kv_heads,
                list(k.shape),
                per_token,
                f"{cache_bytes[h] / per_token:.0f}x",
                params[kv_heads],
                "×".join(map(str, shape)),
                f"{sdpa_err[kv_heads]:.1e}",
            ]
        )

    # GQA with g = h is MHA: copy its weights into nn.MultiheadAttention
    gqa_h = models[h]
    ref = nn.MultiheadAttention(d, h, batch_first=True, dtype=dtype).to(device)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([gqa_h.w_q.weight, gqa_h.w_k.weight, gqa_h.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([gqa_h.w_q.bias, gqa_h.w_k.bias, gqa_h.w_v.bias]))
        ref.out_proj.weight.copy_(gqa_h.w_o.weight)
        ref.out_proj.bias.copy_(gqa_h.w_o.bias)
        causal = torch.ones(steps, steps, dtype=torch.bool, device=device).triu(1)
        ref_mha, _ = ref(x, x, x, attn_mask=causal, need_weights=False)
        out_gqa_h, _, _ = gqa_h(x)
    gqa_is_mha = (out_gqa_h - ref_mha).abs().max().item()

    d_head = d // h
    cache_ratio = {kv: cache_bytes[h] / cache_bytes[kv] for kv in cache_bytes}

    result = DemoResult(
        metrics={
            "cross_attention_hand_vs_mha": hand_err,
            "cross_attention_output_shape": list(out.shape),
            "cross_attention_weights_shape": list(w.shape),
            "cross_attention_output_shape_3x_source": list(out_long.shape),
            "max_weight_on_padded_source": pad_weight,
            "output_change_padded_and_masked": pad_change,
            "output_change_padded_unmasked": junk_change,
            "padded_vs_mha_key_padding_mask": pad_vs_mha,
            "min_cross_attention_weight": min_weight,
            "stepwise_queries_vs_full": stepwise_err,
            "kv_cache_bytes_per_token_per_layer": cache_bytes,
            "kv_cache_ratio_vs_mha": cache_ratio,
            "parameters": params,
            "score_tensor_shape": scores_shapes,
            "gqa_g_equals_h_vs_nn_mha": gqa_is_mha,
            "hand_gqa_vs_sdpa_enable_gqa": sdpa_err,
        },
        tables=[
            Table(
                f"Cross-attention, float64: decoder T = {t_tgt} queries, encoder S = {s_src} keys",
                ["case", "output shape", "weights shape", "result"],
                [
                    [
                        "hand-written vs nn.MultiheadAttention(dec, enc, enc)",
                        list(out.shape),
                        list(w.shape),
                        f"max |diff| {hand_err:.1e}",
                    ],
                    [
                        "source 3x longer",
                        list(out_long.shape),
                        list(w_long.shape),
                        "output length follows the queries",
                    ],
                    [
                        "source + 4 padded positions, key_padding_mask",
                        list(out_pad.shape),
                        list(w_pad.shape),
                        f"weight on pads {pad_weight:.1e}, output moved {pad_change:.1e}",
                    ],
                    [
                        "same padding, mask forgotten",
                        list(out_junk.shape),
                        "",
                        f"output moved {junk_change:.2f}",
                    ],
                    [
                        "queries one by one, cached encoder K/V",
                        "",
                        "",
                        f"max |diff| vs all at once {stepwise_err:.1e}",
                    ],
                ],
            ),
            Table(
                f"h = {h} query heads, d = {d}, d_head = {d_head}, float64; KV cache of one layer "
                "per token, measured from the cached K and V tensors",
                [
                    "variant",
                    "query heads",
                    "K/V heads",
                    "cached K shape",
                    "cache bytes/token",
                    "smaller by",
                    "parameters",
                    "score tensor",
                    "vs SDPA enable_gqa",
                ],
                rows_gqa,
            ),
        ],
        notes=[
            "Whole-model cache = 2 (K and V) x layers x g x d_head x tokens x bytes: for a "
            "Llama-2-7B-like MHA decoder (32 layers, 32 heads of 128, fp16) 0.5 MiB per token, "
            "2 GiB for 4096 tokens; the same with g = 8 K/V heads would be 4x smaller.",
            "Parameters (counted, not a finding): only W_K and W_V shrink, to d x (g d_head); "
            f"W_Q and W_O keep their size, so MQA keeps {params[1] / params[h]:.0%} of MHA's "
            "attention parameters here ("
            + ", ".join(f"g={kv}: {n}" for kv, n in params.items())
            + "). The saving that matters is the cache, not the weights.",
            "Sharing K/V heads changes the model: MQA and GQA are separate architectures "
            "(trained so, or 'uptrained' from an MHA checkpoint by mean-pooling each group's "
            "K/V heads, Ainslie et al. 2023), not an exact compression of MHA.",
        ],
    )
    result.claim(
        "Cross-attention (queries from the decoder, keys and values from the encoder) written "
        "out equals nn.MultiheadAttention(query=dec, key=enc, value=enc), and its output has one "
        "row per query: (B, T_target, d) for any source length, with (T_target, S) weights.",
        hand_err < 1e-12
        and list(out.shape) == [batch, t_tgt, d]
        and list(out_long.shape) == [batch, t_tgt, d]
        and list(w_long.shape) == [batch, 4, t_tgt, 3 * s_src],
        f"max |diff| {hand_err:.1e}; output {list(out.shape)} with S = {s_src} and "
        f"{list(out_long.shape)} with S = {3 * s_src}",
    )
    result.claim(
        "Cross-attention's mask is on the key (source) side, for padding: masked padding gets "
        "exactly zero weight and leaves the output unchanged (as nn.MultiheadAttention's "
        "key_padding_mask), while unmasked padding moves it. There is no causal mask: every "
        "target position reads every source position.",
        pad_weight == 0.0 and pad_change < 1e-12 and pad_vs_mha < 1e-12 and junk_change > 1e-2,
        f"weight on pads {pad_weight:.1e}; output moved {pad_change:.1e} with the mask "
        f"({pad_vs_mha:.1e} from nn.MultiheadAttention), {junk_change:.2f} without; smallest "
        f"unmasked weight {min_weight:.1e}",
    )
    result.claim(
        "The encoder's keys and values are projected once and reused: queries fed one decoding "
        "step at a time against the cached K/V give the same rows as all at once.",
        stepwise_err < 1e-12,
        f"max |diff| {stepwise_err:.1e}",
    )
    result.claim(
        f"Only the g K/V heads need caching: attention computed straight from the (B, g, T, "
        f"d_head) cache (SDPA, enable_gqa=True) equals sharing each K/V head among h/g "
        f"consecutive query heads, for every g. The cache is h/g times smaller ({h}x for MQA), "
        "while the score tensor stays (B, h, T, T): same query heads, same attention FLOPs.",
        max(sdpa_err.values()) < 1e-12
        and all(abs(cache_ratio[kv] - h / kv) < 1e-9 for kv in cache_ratio)
        and all(s == [batch, h, steps, steps] for s in scores_shapes.values()),
        f"SDPA vs hand-written sharing, worst {max(sdpa_err.values()):.1e}; cache vs MHA: "
        + ", ".join(f"g={kv}: {r:.0f}x smaller" for kv, r in cache_ratio.items()),
    )
    result.claim(
        "GQA with as many K/V heads as query heads is exactly MHA (equal to nn.MultiheadAttention "
        "with the same weights).",
        gqa_is_mha < 1e-12,
        f"GQA(g=h) vs nn.MultiheadAttention: max |diff| {gqa_is_mha:.1e}",
    )
    return result
