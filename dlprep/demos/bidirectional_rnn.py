"""Bidirectional RNNs: a task that needs the future context, which a causal RNN cannot solve.

What it shows: a unidirectional RNN's output at step t is a function of x_0..x_t only. A
bidirectional RNN (nn.LSTM(bidirectional=True)) runs a second RNN from the end of the sequence
to the start and concatenates the two hidden states at every step, output (B, T, 2H), so its
output at t sees the whole sequence. Two token-tagging tasks on random sequences of 8 symbols:

- "past": tag position t with the token two steps back, x_{t-2}: a causal RNN has
  already read that token, and both models learn it;
- "future": tag position t with the token two steps ahead, x_{t+2}: the causal RNN has not read
  it yet, so it can do no better than chance (1/8) however long it trains, while the
  bidirectional RNN learns it (Schuster & Paliwal 1997; BiLSTM taggers for NER/POS, ELMo).

It also checks the mechanics on the untrained nets: changing a future token changes the
bidirectional output at t and leaves the unidirectional one exactly unchanged.

The price: a bidirectional RNN needs the whole input before it can emit anything, so it does not
fit streaming (online speech recognition) or autoregressive generation, where the decoder must
be causal; it also has two sets of weights (here the per-direction hidden size is halved, so the
BiLSTM has fewer parameters than the causal LSTM, not more). In a seq2seq model the ENCODER may
be bidirectional (Bahdanau et al. 2015), the decoder not.

Run: dlprep demo bidirectional-rnn
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

VOCAB, LENGTH, SHIFT = 8, 16, 2


class Tagger(nn.Module):
    def __init__(self, bidirectional: bool, hidden: int = 32):
        super().__init__()
        per_direction = hidden // 2 if bidirectional else hidden  # BiLSTM: fewer parameters
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, per_direction, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(tokens))  # (B, T, H): [forward ; backward] if bidirectional
        return self.head(out)  # (B, T, V): a tag per position


def targets(tokens: torch.Tensor, task: str) -> tuple[torch.Tensor, slice]:
    """The tag of each position, and the positions where it is defined."""
    if task == "past":  # y_t = x_{t-2}, defined for t >= 2
        return tokens[:, :-SHIFT], slice(SHIFT, None)
    return tokens[:, SHIFT:], slice(None, -SHIFT)  # "future": y_t = x_{t+2}, for t < T - 2


def train_and_test(bidirectional, task, steps, seed, device) -> tuple[float, int]:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Tagger(bidirectional).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        tokens = torch.randint(0, VOCAB, (64, LENGTH), generator=g).to(device)  # (B, T)
        y, where = targets(tokens, task)
        logits = model(tokens)[:, where]  # (B, T - 2, V)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    tokens = torch.randint(0, VOCAB, (500, LENGTH), generator=g).to(device)
    y, where = targets(tokens, task)
    with torch.no_grad():
        acc = (model(tokens)[:, where].argmax(-1) == y).float().mean().item()
    return acc, sum(p.numel() for p in model.parameters())


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- mechanics: what the output at step t depends on -------------------------------------
    t = 5
    tokens = torch.randint(0, VOCAB, (4, LENGTH), generator=g).to(device)
    changed = tokens.clone()
    changed[:, t + 3] = (changed[:, t + 3] + 1) % VOCAB  # edit one token in t's future
    moved = {}
    for bidirectional in (False, True):
        model = Tagger(bidirectional).to(device)
        with torch.no_grad():
            out, _ = model.rnn(model.embed(tokens))  # (B, T, H)
            out2, _ = model.rnn(model.embed(changed))
        moved[bidirectional] = (out[:, : t + 1] - out2[:, : t + 1]).abs().max().item()

    # ---- training on the two tasks ---------------------------------------------------------
    steps = ctx.pick(200, 600)
    acc, n_params = {}, {}
    for bidirectional in (False, True):
        for task in ("past", "future"):
            acc[bidirectional, task], n_params[bidirectional] = train_and_test(
                bidirectional, task, steps, ctx.seed, device
            )
    names = {False: "LSTM (causal)", True: "BiLSTM"}
    result.tables.append(
        Table(
            f"Tagging accuracy on random sequences of {VOCAB} symbols ({steps} Adam steps; "
            f"chance = {1 / VOCAB:.3f})",
            ["model", "parameters", f"y_t = x_(t-{SHIFT})", f"y_t = x_(t+{SHIFT})"],
            [
                [names[b], n_params[b], f"{acc[b, 'past']:.3f}", f"{acc[b, 'future']:.3f}"]
                for b in (False, True)
            ],
        )
    )
    result.metrics = {
        "max_change_at_or_before_t": {names[b]: moved[b] for b in moved},
        "accuracy": {f"{names[b]}, {task}": a for (b, task), a in acc.items()},
        "parameters": {names[b]: n for b, n in n_params.items()},
    }
    result.claim(
        "Changing a future token leaves a causal LSTM's outputs up to t exactly unchanged and "
        "changes a bidirectional LSTM's.",
        moved[False] == 0.0 and moved[True] > 1e-4,
        f"max |change| at steps <= t: causal {moved[False]:.1e}, bidirectional {moved[True]:.1e}",
    )
    result.claim(
        f"Tagging with a past token (x_(t-{SHIFT})): both models learn it (> 90%).",
        acc[False, "past"] > 0.9 and acc[True, "past"] > 0.9,
        f"causal {acc[False, 'past']:.3f}, bidirectional {acc[True, 'past']:.3f}",
    )
    result.claim(
        f"Tagging with a future token (x_(t+{SHIFT})): the causal LSTM stays at chance "
        f"(< {2 / VOCAB:.2f}) while the BiLSTM learns it (> 85%).",
        acc[False, "future"] < 2 / VOCAB and acc[True, "future"] > 0.85,
        f"causal {acc[False, 'future']:.3f}, bidirectional {acc[True, 'future']:.3f}",
    )
    return result
