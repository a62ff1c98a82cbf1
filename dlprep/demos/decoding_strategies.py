"""Decoding a language model: greedy, beam, temperature, top-k and top-p (nucleus) sampling.

What it shows, measured on a toy "language model" whose next-token distributions we know
exactly (a random bigram model over 200 tokens with peaked, long-tailed rows, like an LM's):

- Greedy and beam search maximise likelihood: the highest log-probability per token, beam a
  little higher than greedy for the whole sequence (it keeps several prefixes alive). But
  they are deterministic (one continuation per prompt) and they repeat: here the greedy path
  falls into a loop, the "degeneration" Holtzman et al. (2019, arXiv 1904.09751) saw in real
  LMs, where maximisation-based decoding gives bland, repetitive text. (In a bigram model the
  loop is inevitable: greedy is a fixed map on a finite set. In a real LM the cause differs,
  repetition reinforces itself through the context, but the symptom is the same.) Beam search
  is not guaranteed to beat greedy on every prompt: greedy's prefix can fall out of the beam.
- Pure sampling (T = 1) reproduces the model's own statistics: the mean log-probability of
  its tokens matches minus the model's entropy, and it is diverse; but it also draws tokens
  from the long tail of unlikely ones, which in a real LM is where incoherent words come from.
- Temperature divides the logits by T before the softmax: T < 1 sharpens (towards greedy),
  T > 1 flattens (more diverse, less likely, more tail). Top-k keeps the k most likely tokens
  (Fan et al. 2018, arXiv 1805.04833); top-p keeps the smallest set whose probability reaches
  p, so its size adapts to how peaked each distribution is (measured: from 1 token to many).
  Both renormalise and sample, cutting the tail while staying diverse.
- Perplexity = exp(mean negative log-likelihood per token): on held-out text from the true
  model it is lowest for the true model, higher for a unigram model (here fitted to the
  held-out text itself, so it is flattered), and V for a uniform one by definition (a
  perplexity of k means "as uncertain as a uniform choice among k tokens").

Run: dlprep demo decoding-strategies
"""

from __future__ import annotations

import math

import torch

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

V = 200  # vocabulary size


def next_token(logp: torch.Tensor, strategy: dict, g: torch.Generator) -> torch.Tensor:
    """logp (N, V) model log-probs -> (N,) chosen tokens."""
    if strategy["kind"] == "greedy":
        return logp.argmax(-1)
    logits = logp / strategy.get("T", 1.0)  # temperature
    if "k" in strategy:  # top-k: everything below the k-th largest logit is removed
        kth = logits.topk(strategy["k"], dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if "p" in strategy:  # top-p: the smallest prefix of sorted tokens with mass >= p
        probs, order = torch.softmax(logits, -1).sort(dim=-1, descending=True)
        mass_before = probs.cumsum(-1) - probs  # mass of the tokens ranked above each one
        drop_sorted = mass_before >= strategy["p"]  # already reached p without this token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs.cpu(), 1, generator=g).squeeze(-1).to(logp.device)


def decode(table, prompts, length, strategy, g):
    """Sample (N, length) continuations of the (N,) prompt tokens under a bigram log-prob table."""
    tokens, cur = [], prompts
    for _ in range(length):
        cur = next_token(table[cur], strategy, g)
        tokens.append(cur)
    return torch.stack(tokens, 1)


def beam_search(table, prompt: int, length: int, width: int):
    """Best sequence of `length` tokens after `prompt` by total log-probability."""
    seqs = torch.full((1, 0), 0, dtype=torch.long, device=table.device)
    scores = torch.zeros(1, device=table.device)
    last = torch.tensor([prompt], device=table.device)
    for _ in range(length):
        cand = scores[:, None] + table[last]  # (beams, V): every one-token extension
        top = cand.flatten().topk(width)
        beam, tok = top.indices // V, top.indices % V
        seqs = torch.cat([seqs[beam], tok[:, None]], 1)
        scores, last = top.values, tok
    return seqs[0], scores[0].item()


def seq_logprob(table, prompts, seqs) -> torch.Tensor:
    """(N,) total log-probability of each continuation under the model."""
    prev = torch.cat([prompts[:, None], seqs[:, :-1]], 1)
    return table[prev, seqs].sum(1)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    # the toy LM: row i is p(next | i); logits ~ 2.5 N(0,1) give a few likely tokens and a tail
    table = torch.log_softmax(2.5 * torch.randn(V, V, generator=g), dim=-1).to(device)
    n_prompts, per_prompt = ctx.pick((16, 16), (32, 32))
    length = 60
    prompt_ids = torch.randint(0, V, (n_prompts,), generator=g).to(device)
    prompts = prompt_ids.repeat_interleave(per_prompt)  # (N,)
    entropy = -(table.exp() * table).sum(-1)  # (V,) entropy of each row, nats
    tail = table < math.log(1e-3)  # (V, V) tokens with probability < 0.001 ("the tail")

    strategies = {
        "greedy": {"kind": "greedy"},
        "sample T=1": {"kind": "sample"},
        "sample T=0.5": {"kind": "sample", "T": 0.5},
        "sample T=1.5": {"kind": "sample", "T": 1.5},
        "top-k 10": {"kind": "sample", "k": 10},
        "top-p 0.9": {"kind": "sample", "p": 0.9},
    }
    stats = {}
    for name, strategy in strategies.items():
        seqs = decode(table, prompts, length, strategy, g)  # (N, L)
        lp = seq_logprob(table, prompts, seqs) / length  # mean log-prob per token
        prev = torch.cat([prompts[:, None], seqs[:, :-1]], 1)
        distinct = (
            sum(  # distinct continuations per prompt, averaged
                len({tuple(s) for s in seqs[i * per_prompt : (i + 1) * per_prompt].tolist()})
                for i in range(n_prompts)
            )
            / n_prompts
        )
        # repetition inside a sequence: fraction of bigrams that already occurred earlier in it
        reps = []
        for s in seqs[::per_prompt].tolist():
            pairs = list(zip(s[:-1], s[1:], strict=True))
            reps.append(1 - len(set(pairs)) / len(pairs))
        stats[name] = {
            "logprob": lp.mean().item(),
            "distinct": distinct,
            "repeat": sum(reps) / len(reps),
            "tail": tail[prev, seqs].float().mean().item(),
            "entropy_of_rows": entropy[prev].mean().item(),
        }

    # beam search (width 4) vs greedy: total log-probability of the best sequence per prompt
    greedy_lp = seq_logprob(
        table, prompt_ids, decode(table, prompt_ids, length, {"kind": "greedy"}, g)
    )
    beam_lp = torch.tensor([beam_search(table, int(p), length, 4)[1] for p in prompt_ids])
    beam_gain = (beam_lp - greedy_lp.cpu()).mean().item()
    beam_wins = (beam_lp >= greedy_lp.cpu() - 1e-4).float().mean().item()

    # how many tokens does the nucleus keep? it adapts to the row's shape
    sorted_p = table.exp().sort(-1, descending=True).values
    nucleus = ((sorted_p.cumsum(-1) - sorted_p) < 0.9).sum(-1).float()  # (V,)

    # perplexity of held-out text from the true model
    held = decode(table, prompt_ids, 200, {"kind": "sample"}, g)  # (n_prompts, 200)
    prev = torch.cat([prompt_ids[:, None], held[:, :-1]], 1)
    unigram = torch.log(torch.bincount(held.flatten(), minlength=V).float() + 1)
    unigram = unigram - torch.logsumexp(unigram, 0)  # add-one smoothed unigram model
    ppl = {
        "true bigram model": math.exp(-table[prev, held].mean().item()),
        "unigram model": math.exp(-unigram[held].mean().item()),
        "uniform over V": math.exp(-math.log(1 / V)),
    }

    rows = [
        [name, f"{s['logprob']:.2f}", f"{s['distinct']:.1f} / {per_prompt}",
         f"{s['repeat']:.2f}", f"{100 * s['tail']:.1f}%"]
        for name, s in stats.items()
    ]  # fmt: skip
    result.tables.append(
        Table(
            f"{n_prompts} prompts x {per_prompt} continuations of {length} tokens, V = {V}",
            [
                "decoding",
                "mean log p / token",
                "distinct continuations",
                "repeated bigrams",
                "tokens with p < 0.001",
            ],
            rows,
        )  # fmt: skip
    )
    result.tables.append(
        Table(
            "Perplexity = exp(mean NLL) on held-out text sampled from the true model",
            ["model", "perplexity"],
            [[k, f"{v:.1f}"] for k, v in ppl.items()],
        )
    )
    result.metrics = {
        "per_strategy": stats,
        "beam_minus_greedy_logprob": beam_gain,
        "beam_at_least_greedy_fraction": beam_wins,
        "nucleus_size_min_median_max": [
            nucleus.min().item(),
            nucleus.median().item(),
            nucleus.max().item(),
        ],
        "perplexity": ppl,
    }
    s = stats
    result.claim(
        "Greedy decoding has the highest per-token likelihood but is deterministic (one "
        "continuation per prompt) and repetitive (it falls into a loop); sampling is diverse.",
        s["greedy"]["logprob"] > max(v["logprob"] for k, v in s.items() if k != "greedy")
        and s["greedy"]["distinct"] == 1
        and s["greedy"]["repeat"] > 0.2
        and s["sample T=1"]["distinct"] > 0.9 * per_prompt
        and s["sample T=1"]["repeat"] < 0.1,
        f"log p/token greedy {s['greedy']['logprob']:.2f} vs T=1 "
        f"{s['sample T=1']['logprob']:.2f}; repeated bigrams greedy "
        f"{s['greedy']['repeat']:.2f}, T=1 {s['sample T=1']['repeat']:.2f}",
    )
    result.claim(
        "Beam search (width 4) usually finds a more likely sequence than greedy: higher total "
        "log-probability on average and for most prompts (it is not guaranteed for each one).",
        beam_gain > 0 and beam_wins > 0.5,
        f"mean total log-prob gain of beam over greedy: {beam_gain:.2f} nats; beam >= greedy "
        f"for {100 * beam_wins:.0f}% of {n_prompts} prompts",
    )
    ent = s["sample T=1"]["entropy_of_rows"]
    se = 0.1 + 3 * math.sqrt(2.0 / (n_prompts * per_prompt * length))
    result.claim(
        "Pure sampling (T = 1) reproduces the model: its mean log-probability per token is "
        "minus the model's entropy (within noise).",
        abs(s["sample T=1"]["logprob"] + ent) < se,
        f"mean log p {s['sample T=1']['logprob']:.3f}, mean entropy of the rows used {ent:.3f}",
    )
    order = ["sample T=0.5", "sample T=1", "sample T=1.5"]
    result.claim(
        "Raising the temperature trades likelihood for diversity: log p falls and the share "
        "of tail tokens (p < 0.001) rises from T = 0.5 to 1 to 1.5.",
        all(
            s[a]["logprob"] > s[b]["logprob"] and s[a]["tail"] <= s[b]["tail"]
            for a, b in zip(order[:-1], order[1:], strict=True)
        )
        and s["sample T=1.5"]["tail"] > 0.01,
        ", ".join(
            f"{k}: log p {s[k]['logprob']:.2f}, tail {100 * s[k]['tail']:.1f}%" for k in order
        ),
    )
    result.claim(
        "Top-k and top-p cut the tail (fewer tail tokens than pure sampling) yet stay diverse; "
        "top-p's kept set adapts to each distribution (different sizes across contexts).",
        s["top-k 10"]["tail"] < 0.5 * s["sample T=1"]["tail"]
        and s["top-p 0.9"]["tail"] < 0.5 * s["sample T=1"]["tail"]
        and min(s["top-k 10"]["distinct"], s["top-p 0.9"]["distinct"]) > 0.8 * per_prompt
        and nucleus.max() >= 3 * nucleus.min(),
        f"tail: T=1 {100 * s['sample T=1']['tail']:.2f}%, top-k {100 * s['top-k 10']['tail']:.2f}%,"
        f" top-p {100 * s['top-p 0.9']['tail']:.2f}%; nucleus size {int(nucleus.min())}.."
        f"{int(nucleus.max())} tokens",
    )
    result.claim(
        "Perplexity: the true model has the lowest on held-out text; a unigram model (even one "
        "fitted to that very text) is worse, and both beat a uniform model, whose perplexity "
        "is the vocabulary size.",
        ppl["true bigram model"] < ppl["unigram model"] < ppl["uniform over V"],
        ", ".join(f"{k} {v:.1f}" for k, v in ppl.items()),
    )
    return result
