"""KV cache: cached decoding gives the same logits, O(n) instead of O(n^2) work, and costs memory.

What it shows, measured on a small GPT-style decoder (random weights: the identities below
hold for any weights):

- Causality makes the keys and values of past positions fixed: token t's K and V depend only
  on tokens 0..t, so generating token t+1 never changes them. A KV cache stores them and each
  decoding step runs only the NEW token through the network (its query attends to the cached
  keys/values). The logits and the greedy tokens are the same as recomputing the whole prefix
  at every step (float32 round-off). Queries are not cached: only the newest one is used.
- Work, counted exactly with torch.utils.flop_counter.FlopCounterMode: without the cache,
  step t reprocesses t positions, so n new tokens cost a sum of t ~ n^2/2 position-passes;
  with it each position goes through once (~n), and only the attention part (the new query
  against t cached keys, 4 L t d FLOPs) still grows with t. Doubling n roughly quadruples the
  uncached FLOPs and roughly doubles the cached ones. The cached per-token cost is exactly
  2 N_matmul + 4 L t d FLOPs (N_matmul = weights in the Linear layers): the "2N FLOPs per
  token" rule of thumb, plus the attention term.
- Memory: the cache holds K and V for every layer, sequence, position and KV head:
  bytes = 2 (K and V) x layers x batch x seq_len x n_kv_heads x d_head x bytes_per_element,
  measured here from the cache tensors. Grouped-query attention (GQA, Ainslie et al. 2023) and
  multi-query attention (MQA, Shazeer 2019: one KV head) share each K/V head between several
  query heads and shrink it by n_heads / n_kv_heads; the cache still reproduces the uncached
  logits. For LLaMA-2-7B (32 layers, 32 KV heads of 128, fp16) that is 0.5 MiB per token,
  2 GiB for one 4096-token sequence.

What really happens with wall-clock time: for a model this small the cached loop is not
always faster on a CPU (Python and kernel-launch overhead dominate); the saving is real for
long sequences and large models, where decoding is limited by reading the weights and the
cache from memory. The demo reports times but makes no claim about them.

Run: dlprep demo kv-cache
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False

VOCAB = 64


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads, self.d_head = heads, kv_heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * kv_heads * self.d_head)  # GQA: fewer K/V heads than Q heads
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, cache: dict | None) -> torch.Tensor:
        b, t_new, d = x.shape  # (B, T_new, d)
        q = self.q(x).view(b, t_new, self.heads, self.d_head).transpose(1, 2)  # (B, H, T_new, dh)
        k, v = self.kv(x).view(b, t_new, 2, self.kv_heads, self.d_head).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # (B, H_kv, T_new, dh)
        past = 0
        if cache is not None:
            if "k" in cache:  # keys/values of earlier positions: computed once, reused
                past = cache["k"].shape[2]
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v  # (B, H_kv, T_all, dh)
        group = self.heads // self.kv_heads  # query heads per K/V head
        q = q.reshape(b, self.kv_heads, group * t_new, self.d_head)  # group the query heads
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, H_kv, G*T_new, T_all)
        scores = scores.view(b, self.kv_heads, group, t_new, -1)
        q_pos = torch.arange(past, past + t_new, device=x.device)
        k_pos = torch.arange(k.shape[2], device=x.device)
        scores = scores.masked_fill(k_pos[None, :] > q_pos[:, None], float("-inf"))  # causal
        weights = torch.softmax(scores, dim=-1).view(b, self.kv_heads, group * t_new, -1)
        out = (weights @ v).view(b, self.heads, t_new, self.d_head)  # (B, H, T_new, dh)
        return self.proj(out.transpose(1, 2).reshape(b, t_new, d))


class Decoder(nn.Module):
    def __init__(self, d=64, heads=4, kv_heads=4, layers=2, max_len=256):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(max_len, d)
        self.attn = nn.ModuleList(Attention(d, heads, kv_heads) for _ in range(layers))
        self.mlp = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
            for _ in range(layers)
        )
        self.ln = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.head = nn.Linear(d, VOCAB)

    def forward(self, idx: torch.Tensor, caches: list | None = None) -> torch.Tensor:
        past = caches[0]["k"].shape[2] if caches and "k" in caches[0] else 0
        x = self.tok(idx) + self.pos(torch.arange(past, past + idx.shape[1], device=idx.device))
        for i, (attn, mlp, ln) in enumerate(zip(self.attn, self.mlp, self.ln, strict=True)):
            x = x + attn(ln(x), None if caches is None else caches[i])
            x = x + mlp(x)
        return self.head(x)  # (B, T_new, V)


def generate(model, prompt, new: int, use_cache: bool):
    """Greedy decoding; returns tokens (B, P + new), per-step logits (B, new, V), caches."""
    seq, logits_out = prompt, []
    caches = [{} for _ in model.attn] if use_cache else None
    with torch.no_grad():
        for i in range(new):
            inp = seq[:, -1:] if (use_cache and i > 0) else seq  # one token vs the whole prefix
            logits = model(inp, caches)[:, -1]  # (B, V)
            logits_out.append(logits)
            seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    return seq, torch.stack(logits_out, 1), caches


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    d, heads, layers, batch, p_len = 64, 4, 2, 4, 4
    n_short, n_long = ctx.pick((24, 48), (64, 128))
    model = Decoder(d, heads, heads, layers).to(device).eval()
    prompt = torch.randint(0, VOCAB, (batch, p_len), generator=g).to(device)  # (B, P)

    # ---- 1. same logits, same tokens ------------------------------------------------------
    seq_full, logits_full, _ = generate(model, prompt, n_long, use_cache=False)
    seq_kv, logits_kv, caches = generate(model, prompt, n_long, use_cache=True)
    max_diff = (logits_full - logits_kv).abs().max().item()
    same_tokens = bool(torch.equal(seq_full, seq_kv))

    # ---- 2. work: exact FLOP counts for n and 2n new tokens -------------------------------
    flops = {}
    for n in (n_short, n_long):
        for use_cache in (False, True):
            flops[(n, use_cache)] = count_flops(
                lambda n=n, use_cache=use_cache: generate(model, prompt, n, use_cache)
            )
    ratio_full = flops[(n_long, False)] / flops[(n_short, False)]
    ratio_kv = flops[(n_long, True)] / flops[(n_short, True)]
    saving = flops[(n_long, False)] / flops[(n_long, True)]

    # cached per-token cost at context length t: 2 * N_matmul per token + 4 L t d (QK^T, AV)
    n_matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    caches_step = [{} for _ in model.attn]
    with torch.no_grad():
        model(prompt, caches_step)  # fill the cache with the P prompt positions
        t = p_len + 1  # the new token attends to P cached positions and itself
        step_flops = count_flops(lambda: model(prompt[:, :1], caches_step))
    predicted = batch * (2 * n_matmul + 4 * layers * t * d)

    # ---- 3. memory: measured cache bytes vs the formula, MHA vs GQA vs MQA ----------------
    mem_rows, mem_ok, gqa_ok = [], True, True
    total_len = p_len + n_long - 1  # positions in the cache after the last step
    for kv_heads in (heads, 2, 1):
        torch.manual_seed(ctx.seed)
        m = Decoder(d, heads, kv_heads, layers).to(device).eval()
        if kv_heads == heads:
            c = caches
        else:
            s1, l1, _ = generate(m, prompt, n_long, use_cache=False)
            s2, l2, c = generate(m, prompt, n_long, use_cache=True)
            gqa_ok = gqa_ok and (l1 - l2).abs().max().item() < 1e-4 and torch.equal(s1, s2)
        measured = sum(cc[key].numel() * cc[key].element_size() for cc in c for key in ("k", "v"))
        formula = 2 * layers * batch * total_len * kv_heads * (d // heads) * 4  # fp32: 4 bytes
        mem_ok = mem_ok and measured == formula
        mem_rows.append([f"{heads} Q heads, {kv_heads} KV heads", measured, formula])
    mem_mha, mem_mqa = mem_rows[0][1], mem_rows[-1][1]

    # ---- 4. wall time (reported, no claim: tiny models are overhead-bound) -----------------
    times = {}
    for use_cache in (False, True):
        start = time.perf_counter()
        generate(model, prompt, n_long, use_cache)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times[use_cache] = time.perf_counter() - start

    result.metrics = {
        "max_logit_diff": max_diff,
        "same_tokens": same_tokens,
        "flops": {f"n={n},cache={c}": v for (n, c), v in flops.items()},
        "flops_ratio_2n_vs_n_no_cache": ratio_full,
        "flops_ratio_2n_vs_n_cache": ratio_kv,
        "cache_saving_factor": saving,
        "step_flops_measured": step_flops,
        "step_flops_predicted": predicted,
        "cache_bytes": {row[0]: row[1] for row in mem_rows},
        "seconds_no_cache_vs_cache": [times[False], times[True]],
    }
    result.tables.append(
        Table(
            f"FLOPs to generate n tokens after a {p_len}-token prompt (batch {batch}, "
            f"{layers} layers, d={d})",
            ["n new tokens", "no cache", "KV cache", "no cache / cache"],
            [
                [
                    n,
                    f"{flops[(n, False)]:.3e}",
                    f"{flops[(n, True)]:.3e}",
                    f"{flops[(n, False)] / flops[(n, True)]:.1f}x",
                ]
                for n in (n_short, n_long)
            ],
        )  # fmt: skip
    )
    result.tables.append(
        Table(
            f"KV-cache size after {total_len} positions (fp32): measured vs "
            "2 x layers x batch x seq x n_kv_heads x d_head x 4 bytes",
            ["attention", "measured bytes", "formula"],
            mem_rows,
        )
    )
    result.claim(
        "Decoding with a KV cache gives the same logits as recomputing the whole prefix "
        "(float32 round-off) and the same greedy tokens.",
        max_diff < 1e-4 and same_tokens,
        f"max |logit difference| {max_diff:.1e} over {n_long} steps; same tokens: {same_tokens}",
    )
    result.claim(
        "Without the cache the work grows quadratically in the number of generated tokens "
        "(doubling n costs > 3x the FLOPs); with it, about linearly (< 2.5x).",
        ratio_full > 3 and ratio_kv < 2.5,
        f"FLOPs ratio 2n vs n: no cache {ratio_full:.2f}, cache {ratio_kv:.2f}; at n={n_long} "
        f"the cache saves {saving:.1f}x",
    )
    result.claim(
        "A cached decoding step costs 2 x (weights in the matmuls) FLOPs per token plus the "
        "attention term 4 x layers x context x d: the '2N FLOPs per token' rule.",
        step_flops == predicted,
        f"measured {step_flops}, predicted {batch} x (2 x {n_matmul} + 4 x {layers} x {t} x {d}) "
        f"= {predicted}",
    )
    result.claim(
        "The cache takes 2 x layers x batch x seq_len x n_kv_heads x d_head x bytes; GQA/MQA "
        f"shrink it by n_heads/n_kv_heads ({heads}x for MQA) and still match uncached decoding.",
        mem_ok and gqa_ok and mem_mha == heads * mem_mqa,
        "bytes: " + ", ".join(f"{r[0]}: {r[1]}" for r in mem_rows) + f"; GQA/MQA exact: {gqa_ok}",
    )
    result.notes.append(
        f"Wall time for {n_long} tokens: {times[False] * 1e3:.0f} ms without the cache, "
        f"{times[True] * 1e3:.0f} ms with it. At this size overhead dominates; no claim is made."
    )
    result.notes.append(
        "LLaMA-2-7B (32 layers, 32 KV heads x 128, fp16): 2 x 32 x 32 x 128 x 2 bytes = "
        "512 KiB per token, 2 GiB for one 4096-token sequence; LLaMA-2-70B uses GQA with 8 KV "
        "heads for this reason."
    )
    return result
