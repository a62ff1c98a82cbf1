"""Remembering across a long lag: vanilla RNN vs LSTM vs GRU, and why the gate's bias matters.

What it shows: the task is the simplest long-range dependency. The first token of a sequence
is one of 4 class symbols; it is followed by lag - 1 random distractor tokens (4 other
symbols); at the last step the model must output the class. The information has to survive
lag steps of state updates. Three cells are trained the same way (Adam, the same steps):

- a vanilla tanh RNN, h_t = tanh(W_ih x_t + W_hh h_{t-1} + b): its state is rewritten through
  W_hh and a squashing nonlinearity at every step, so both the stored class and the gradient
  that should teach it to store it shrink geometrically with the lag;
- an LSTM, whose cell state is updated additively, c_t = f_t * c_{t-1} + i_t * g_t: with the
  forget gate f near 1 the class can sit in c for many steps and the gradient flows back along
  the same path (Hochreiter & Schmidhuber 1997; the forget gate is Gers et al. 2000);
- a GRU, h_t = (1 - z_t) * n_t + z_t * h_{t-1} in PyTorch's convention, where z near 1 copies
  the state forward unchanged.

What really happens (measured): at a short lag all three learn the task. At a long lag the
vanilla RNN stays at chance, but so does an LSTM at PyTorch's default initialisation: its forget
gate starts near sigmoid(0) = 0.5, so the stored class decays like 0.5^lag and there is almost
no gradient to learn to keep it. The additive path only helps when the gate starts open: with
the forget-gate bias set to 3 (f = sigmoid(3) = 0.95; Jozefowicz et al. 2015 recommend 1, Tallec
& Ollivier 2018 "chrono initialisation" set it from the time scale, log(U(1, T_max - 1))), the
LSTM solves the long lag in the same budget, and a GRU with its update-gate bias set to 3 (copy
the state by default) does too. The commonly recommended bias 1 is not enough for lag 30 here:
sigma(1)^30 ~ 1e-4, and when we tried it (seeds 0-2) it reached only ~50% accuracy, with 150 or
400 steps; the open-gate bias has to match the lag, which is what chrono initialisation does.
"LSTMs remember long-range dependencies" is a statement about what the architecture CAN
represent and propagate; whether training finds it depends on the initialisation. PyTorch has
two bias vectors per gate (b_ih + b_hh): set one, zero the other.

Run: dlprep demo lstm-memory
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

CLASSES, DISTRACTORS = 4, 4  # symbols 0..3 are the classes, 4..7 the distractors
HIDDEN = 32
# name -> (cell, bias of the "keep" gate: LSTM forget gate / GRU update gate; None = default)
MODELS = {
    "RNN (tanh)": ("rnn", None),
    "LSTM, default init": ("lstm", None),
    "LSTM, forget bias 3": ("lstm", 3.0),
    "GRU, update bias 3": ("gru", 3.0),
}


class Recall(nn.Module):
    def __init__(self, cell: str, keep_bias: float | None):
        super().__init__()
        rnn_cls = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_cls(CLASSES + DISTRACTORS, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)
        if keep_bias is not None:
            # gate order in the stacked weights: LSTM (i, f, g, o), GRU (r, z, n): rows H..2H
            # are the forget gate resp. the update gate. Effective bias = b_ih + b_hh.
            rows = slice(HIDDEN, 2 * HIDDEN)
            with torch.no_grad():
                self.rnn.bias_ih_l0[rows].fill_(keep_bias)
                self.rnn.bias_hh_l0[rows].fill_(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # (B, T, H)
        return self.head(out[:, -1])  # (B, classes): read the answer at the last step


def make_batch(g: torch.Generator, batch: int, lag: int) -> tuple[torch.Tensor, torch.Tensor]:
    label = torch.randint(0, CLASSES, (batch,), generator=g)  # (B,)
    tokens = torch.randint(CLASSES, CLASSES + DISTRACTORS, (batch, lag), generator=g)  # (B, T)
    tokens[:, 0] = label  # the class is shown once, at the start
    return F.one_hot(tokens, CLASSES + DISTRACTORS).float(), label  # (B, T, 8), (B,)


def train_and_test(cell, keep_bias, lag, steps, seed, device) -> float:
    torch.manual_seed(seed)  # the same initial weights for every lag
    g = torch.Generator().manual_seed(seed)  # the same data stream for every model
    model = Recall(cell, keep_bias).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x, y = make_batch(g, 64, lag)
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # exploding steps would blur the point
        opt.step()
    x, y = make_batch(g, 500, lag)
    with torch.no_grad():
        return (model(x.to(device)).argmax(-1) == y.to(device)).float().mean().item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    short, long = 5, 30
    lags = ctx.pick([short, long], [short, 15, long, 60])
    steps = ctx.pick(150, 400)
    acc: dict[str, dict[int, float]] = {name: {} for name in MODELS}
    for name, (cell, keep_bias) in MODELS.items():
        for lag in lags:
            acc[name][lag] = train_and_test(cell, keep_bias, lag, steps, ctx.seed, device)

    result = DemoResult()
    result.tables.append(
        Table(
            f"Test accuracy recalling the first token after `lag` steps ({steps} Adam steps, "
            f"hidden {HIDDEN}, chance = {1 / CLASSES:.2f})",
            ["model", *(f"lag {lag}" for lag in lags)],
            [[name, *(f"{acc[name][lag]:.2f}" for lag in lags)] for name in MODELS],
        )
    )
    result.metrics = {
        "accuracy": {name: {str(k): v for k, v in a.items()} for name, a in acc.items()}
    }
    rnn, lstm0 = acc["RNN (tanh)"], acc["LSTM, default init"]
    lstm3, gru3 = acc["LSTM, forget bias 3"], acc["GRU, update bias 3"]
    chance_band = 0.4  # 4 classes: 0.25 is chance; anything under 0.4 has learned ~nothing
    result.claim(
        f"At a short lag ({short}) every cell learns the task (> 95% accuracy): the task is easy "
        "when the dependency is short.",
        min(a[short] for a in acc.values()) > 0.95,
        ", ".join(f"{n}: {a[short]:.2f}" for n, a in acc.items()),
    )
    result.claim(
        f"At lag {long} the vanilla RNN stays near chance (< {chance_band}).",
        rnn[long] < chance_band,
        f"RNN accuracy {rnn[long]:.2f}",
    )
    result.claim(
        f"An LSTM with its forget gate open at init (bias 3) solves lag {long} (> 95%), and so "
        "does a GRU whose update gate starts on 'keep' (> 80%).",
        lstm3[long] > 0.95 and gru3[long] > 0.8,
        f"LSTM (forget bias 3) {lstm3[long]:.2f}, GRU (update bias 3) {gru3[long]:.2f}",
    )
    result.claim(
        f"But at PyTorch's default init (forget gate ~ 0.5) the LSTM is stuck near chance at lag "
        f"{long} too: the additive cell path helps only when the gate lets it carry the state.",
        lstm0[long] < chance_band,
        f"LSTM (default init) {lstm0[long]:.2f}",
    )
    result.notes.append(
        "A vanilla RNN can sometimes 'latch' a symbol into a saturated state and solve moderate "
        "lags (see lag 15 in the full run, where it can even beat the default-initialised LSTM); "
        "the gated cells' advantage is that keeping the "
        "state is their default once the keep gate is open, not something to discover."
    )
    return result
