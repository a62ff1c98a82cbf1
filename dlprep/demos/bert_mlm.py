"""Masked vs causal language modelling: a tiny BERT uses the context on both sides of a gap.

What it shows: BERT (Devlin et al. 2019, arXiv 1810.04805) is a Transformer encoder with no
attention mask, trained on the masked-LM objective: hide some input tokens (replace them by
[MASK]) and predict them from everything else, so every representation is conditioned on
the left AND the right context ("deep bidirectional"). GPT is a decoder with a causal mask,
trained to predict each token from the tokens before it. The data here make the difference
stark: each sequence is k random tokens followed by a copy of the same k tokens. A token in
the first half can only be recovered from its copy on the RIGHT; a token in the second half
from its copy on the left. The same tiny Transformer (2 layers, d = 32, learned positions) is
trained both ways:

- masked LM: one position per sequence is replaced by [MASK] and predicted; the model learns
  to look k positions away in either direction and fills both halves;
- causal LM (next-token prediction, with a causal mask): it predicts the second half almost
  perfectly (copy from k back) and the first half at chance, because the information it
  needs lies in the future it is not allowed to see.

That is why BERT-style encoders are used for understanding tasks (classification, tagging,
extractive QA) and GPT-style decoders for generation: a masked LM is not a generative model
of left-to-right text, and a causal LM's representation of token t ignores what follows it.
BERT's real recipe masks 15% of tokens, replacing 80% of those with [MASK], 10% with a
random token and 10% left unchanged (to soften the mismatch that [MASK] never appears in
fine-tuning data), and only the masked positions give a loss: ~15% of tokens per pass
against 100% for a causal LM. This demo masks one token per sequence and always uses [MASK].

Run: dlprep demo bert-mlm
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

VOCAB, HALF = 10, 6  # tokens 0..9; sequences are 6 random tokens, then the same 6 again
MASK, BOS = VOCAB, VOCAB + 1  # extra input symbols: [MASK] for the MLM, <bos> for the causal LM
BATCH = 32


class TinyTransformer(nn.Module):
    def __init__(self, d: int = 32, layers: int = 2, max_len: int = 2 * HALF + 1):
        super().__init__()
        self.tok = nn.Embedding(VOCAB + 2, d)
        self.pos = nn.Embedding(max_len, d)  # learned absolute positions, as in BERT
        layer = nn.TransformerEncoderLayer(
            d, nhead=4, dim_feedforward=4 * d, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, idx: torch.Tensor, causal: bool) -> torch.Tensor:
        steps = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(steps, device=idx.device))  # (B, T, d)
        mask = None
        if causal:  # True above the diagonal = may NOT attend (nn.Transformer's convention)
            mask = torch.ones(steps, steps, dtype=torch.bool, device=idx.device).triu(1)
        return self.head(self.encoder(x, mask=mask, is_causal=causal))  # (B, T, V)


def make_batch(g: torch.Generator, batch: int) -> torch.Tensor:
    first = torch.randint(0, VOCAB, (batch, HALF), generator=g)
    return torch.cat([first, first], dim=1)  # (B, 2k): the second half copies the first


def mlm_inputs(seq: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    where = torch.randint(0, seq.shape[1], (seq.shape[0],), generator=g)  # one gap per sequence
    masked = seq.clone()
    masked[torch.arange(seq.shape[0]), where] = MASK
    return masked, where


def train(model, g, device, causal: bool, steps: int) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rows = torch.arange(BATCH)
    for _ in range(steps):
        seq = make_batch(g, BATCH)
        if causal:  # predict token t from <bos>, x_0 .. x_(t-1): a loss at every position
            inp = torch.cat([torch.full((BATCH, 1), BOS), seq[:, :-1]], dim=1).to(device)
            loss = F.cross_entropy(model(inp, True).reshape(-1, VOCAB), seq.reshape(-1).to(device))
        else:  # predict the masked token only
            inp, where = mlm_inputs(seq, g)
            logits = model(inp.to(device), False)[rows, where.to(device)]  # (B, V)
            loss = F.cross_entropy(logits, seq[rows, where].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy_by_position(model, g, device, causal: bool, n: int = 2000) -> list[float]:
    """Accuracy of predicting the token at each position (masked there, or from its past)."""
    seq = make_batch(g, n)  # (n, 2k)
    accs = []
    for t in range(seq.shape[1]):
        if causal:
            inp = torch.cat([torch.full((n, 1), BOS), seq[:, :-1]], dim=1)
            pred = model(inp.to(device), True)[:, t].argmax(-1)
        else:
            inp = seq.clone()
            inp[:, t] = MASK
            pred = model(inp.to(device), False)[:, t].argmax(-1)
        accs.append((pred == seq[:, t].to(device)).float().mean().item())
    return accs


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    steps = ctx.pick(200, 1500)
    acc = {}
    for name, causal in (("masked LM (BERT-style)", False), ("causal LM (GPT-style)", True)):
        torch.manual_seed(ctx.seed)  # the same initial weights for both objectives
        model = TinyTransformer().to(device)
        train(model, g, device, causal, steps)
        model.eval()
        acc[name] = accuracy_by_position(model, g, device, causal, n=ctx.pick(300, 2000))
    mlm, clm = acc["masked LM (BERT-style)"], acc["causal LM (GPT-style)"]

    def mean(xs):
        return sum(xs) / len(xs)

    result = DemoResult()
    result.tables.append(
        Table(
            f"Accuracy predicting each position of [k random tokens | the same k again], k = "
            f"{HALF}, {VOCAB} symbols (chance {1 / VOCAB:.2f}), {steps} AdamW steps",
            ["objective", *(f"t={t}" for t in range(2 * HALF))],
            [[name, *(f"{a:.2f}" for a in accs)] for name, accs in acc.items()],
        )
    )
    result.metrics = {"accuracy_by_position": acc}
    result.claim(
        "The masked LM fills a gap in the FIRST half (> 90%): it reads the copy on the right.",
        mean(mlm[:HALF]) > 0.9,
        f"mean accuracy over the first half {mean(mlm[:HALF]):.3f}",
    )
    result.claim(
        "It fills the second half too (> 90%): it attends to whichever side holds the answer.",
        mean(mlm[HALF:]) > 0.9,
        f"mean accuracy over the second half {mean(mlm[HALF:]):.3f}",
    )
    result.claim(
        "The causal LM predicts the second half (> 90%, copying from k tokens back) but the "
        f"first half only at chance (< {2 / VOCAB:.2f}): the answer is in its future.",
        mean(clm[HALF:]) > 0.9 and mean(clm[:HALF]) < 2 / VOCAB,
        f"first half {mean(clm[:HALF]):.3f}, second half {mean(clm[HALF:]):.3f}",
    )
    return result
