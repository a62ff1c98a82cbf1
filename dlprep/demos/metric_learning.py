"""Triplet, contrastive and InfoNCE losses on synthetic clusters; why triplet mining matters.

What it shows: metric learning trains an embedding f(x) (here a small MLP, L2-normalised to
the unit sphere) so that distances mean similarity. The data: 16 classes in 32 dimensions,
each a cluster around a random centre, plus large noise in 8 shared "nuisance" directions
that carry no class information; nearest neighbours in the raw input space are often from
the wrong class. The embedding must learn to ignore the nuisance directions.

Losses (batches of P = 8 classes x K = 4 examples, the usual "PK" sampling):
- Triplet (Schroff et al. 2015, FaceNet): max(0, d(a, p) - d(a, n) + m) for an anchor a, a
  positive p of its class and a negative n of another class, margin m = 0.2. Without the
  margin, mapping everything to one point would cost 0.
  * random triplets: every (a, p) pair with a random negative;
  * batch-hard mining (Hermans et al. 2017, "In Defense of the Triplet Loss for Person
    Re-Identification"): for each anchor its farthest positive and closest negative in the
    batch.
- Contrastive (Hadsell, Chopra & LeCun 2006): y d^2 + (1 - y) max(0, m - d)^2 over all pairs
  in the batch, m = 1: positives pulled together, negatives pushed out to the margin only.
- InfoNCE / N-pair (Sohn 2016; van den Oord et al. 2018): for each anchor a softmax
  cross-entropy over similarities / temperature, with its positive as the right "class"
  and the other examples' positives as negatives.

Measured: 1-nearest-neighbour accuracy (recall@1) on held-out examples, and the share of
random triplets that still have a non-zero loss.

What really happens at this scale: every loss lifts recall@1 far above the raw input space
and the untrained network. Once the embedding is half-decent, most random triplets already
satisfy the margin and contribute exactly zero loss and zero gradient: that is why mining
(hard or semi-hard negatives) is used. But batch-hard mining from the first step does not
beat random triplets here (recall@1 from 18 points lower to 1 point higher over seeds 0-9
in quick mode; in the longer full run it catches up, a couple of points ahead), and early
in training it squeezes the whole embedding: after 200 steps the mean distance between
classes is 3-8x smaller than with random triplets, and most random triplets then violate the
margin. Given more steps (full mode) the classes spread out again. This is the start of
the collapse FaceNet warns of (Schroff et al. 2015, sec. 3.2: selecting the hardest
negatives "can in practice lead to bad local minima early on in training, specifically it
can result in a collapsed model (i.e. f(x) = 0)"). Early on the hardest negative is often
closer than the hardest positive; the loss d_ap - d_an + m then falls towards m when every
distance shrinks, so the gradient pulls the whole embedding together. FaceNet therefore uses
semi-hard negatives (farther than the positive, but within the margin).

Run: dlprep demo metric-learning
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

N_CLASSES, DIM, NUISANCE, EMB = 16, 32, 8, 16
P, K = 8, 4  # classes per batch, examples per class
EARLY = 200  # the step at which the early spread is measured (the end in quick mode)


def _make_data(g: torch.Generator, n_per_class: int):
    centres = torch.randn(N_CLASSES, DIM, generator=g)  # (C, D)
    basis = torch.linalg.qr(torch.randn(DIM, NUISANCE, generator=g))[0]  # (D, 8) orthonormal

    def sample(n):
        y = torch.arange(N_CLASSES).repeat_interleave(n)  # (C n,)
        x = centres[y] + 1.2 * torch.randn(len(y), DIM, generator=g)
        x = x + 4.0 * torch.randn(len(y), NUISANCE, generator=g) @ basis.T  # nuisance
        return x, y

    return sample(n_per_class), sample(n_per_class)


def _recall_at_1(emb: torch.Tensor, y: torch.Tensor) -> float:
    d = torch.cdist(emb, emb)  # (N, N)
    d.fill_diagonal_(float("inf"))  # leave-one-out nearest neighbour
    return (y[d.argmin(1)] == y).float().mean().item()


def _active_random_triplets(emb, y, g, margin: float, n: int = 4000) -> float:
    a = torch.randint(0, len(y), (n,), generator=g).to(emb.device)
    same = y.unsqueeze(0) == y.unsqueeze(1)  # (N, N)
    # a random positive and a random negative for each anchor
    pos_w = (same & ~torch.eye(len(y), dtype=torch.bool, device=emb.device))[a].float()
    neg_w = (~same)[a].float()
    p = torch.multinomial(pos_w.cpu(), 1, generator=g).squeeze(1).to(emb.device)
    q = torch.multinomial(neg_w.cpu(), 1, generator=g).squeeze(1).to(emb.device)
    d_ap = (emb[a] - emb[p]).norm(dim=1)
    d_an = (emb[a] - emb[q]).norm(dim=1)
    return (d_ap - d_an + margin > 0).float().mean().item()


def _distances(emb: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean distance between examples of the same class, and of different classes."""
    d = torch.cdist(emb, emb)
    same = y.unsqueeze(0) == y.unsqueeze(1)
    off = ~torch.eye(len(y), dtype=torch.bool, device=emb.device)
    return d[same & off].mean().item(), d[~same].mean().item()


def _loss(name: str, e: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """e: (P K, EMB) unit-norm embeddings, y: (P K,) labels."""
    d = torch.cdist(e, e)  # (B, B) Euclidean distances
    same = y.unsqueeze(0) == y.unsqueeze(1)
    eye = torch.eye(len(y), dtype=torch.bool, device=e.device)
    pos, neg = same & ~eye, ~same
    if name == "triplet (random)":
        # every anchor-positive pair, each with one random negative
        a_idx, p_idx = pos.nonzero(as_tuple=True)
        neg_w = neg[a_idx].float().cpu()
        n_idx = torch.multinomial(neg_w, 1, generator=g).squeeze(1).to(e.device)
        return F.relu(d[a_idx, p_idx] - d[a_idx, n_idx] + 0.2).mean()
    if name == "triplet (batch-hard)":
        hardest_pos = (d * pos).max(1).values  # farthest positive per anchor
        hardest_neg = d.masked_fill(~neg, float("inf")).min(1).values  # closest negative
        return F.relu(hardest_pos - hardest_neg + 0.2).mean()
    if name == "contrastive":
        off = ~eye
        pull = (d**2)[pos].sum()
        push = (F.relu(1.0 - d) ** 2)[neg].sum()
        return (pull + push) / off.sum()
    # InfoNCE / N-pair: anchors = first example of each class pair, positives = second
    first = torch.arange(0, len(y), K, device=e.device)  # one anchor per class
    logits = e[first] @ e[first + 1].T / 0.1  # (P, P) cosine similarity / temperature
    return F.cross_entropy(logits, torch.arange(len(first), device=e.device))


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    (x_tr, y_tr), (x_te, y_te) = _make_data(g, n_per_class=ctx.pick(40, 80))
    x_tr, y_tr, x_te, y_te = (t.to(device) for t in (x_tr, y_tr, x_te, y_te))
    steps = ctx.pick(200, 1000)
    losses = ["triplet (random)", "triplet (batch-hard)", "contrastive", "InfoNCE"]

    def new_net():
        torch.manual_seed(ctx.seed)  # the same initial weights for every loss
        return nn.Sequential(nn.Linear(DIM, 64), nn.ReLU(), nn.Linear(64, EMB)).to(device)

    def embed(net, x):
        with torch.no_grad():
            return F.normalize(net(x), dim=1)

    recall_raw = _recall_at_1(x_te, y_te)
    untrained = new_net()
    recall_untrained = _recall_at_1(embed(untrained, x_te), y_te)
    active_untrained = _active_random_triplets(embed(untrained, x_te), y_te, g, 0.2)
    per_class = len(y_tr) // N_CLASSES

    rows, recall, active, spread, early = [], {}, {}, {}, {}
    for name in losses:
        net = new_net()
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for step in range(1, steps + 1):
            # PK batch: P random classes, K random examples of each
            classes = torch.randperm(N_CLASSES, generator=g)[:P]
            picks = torch.stack([torch.randperm(per_class, generator=g)[:K] for _ in classes])
            idx = (classes.unsqueeze(1) * per_class + picks).flatten().to(device)  # (P K,)
            e = F.normalize(net(x_tr[idx]), dim=1)
            loss = _loss(name, e, y_tr[idx], g)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step == EARLY:  # how spread out the embedding is early in training
                early[name] = _distances(embed(net, x_te), y_te)
        emb = embed(net, x_te)
        recall[name] = _recall_at_1(emb, y_te)
        active[name] = _active_random_triplets(emb, y_te, g, 0.2)
        spread[name] = _distances(emb, y_te)
        rows.append([name, f"{recall[name]:.3f}", f"{active[name]:.3f}",
                     f"{spread[name][0]:.3f}", f"{spread[name][1]:.3f}"])  # fmt: skip
    rows = [
        ["raw input space", f"{recall_raw:.3f}", "-", "-", "-"],
        [
            "untrained network",
            f"{recall_untrained:.3f}",
            f"{active_untrained:.3f}",
            *(f"{v:.3f}" for v in _distances(embed(untrained, x_te), y_te)),
        ],  # fmt: skip
        *rows,
    ]
    result = DemoResult(
        metrics={
            "recall_at_1_raw": recall_raw,
            "recall_at_1_untrained": recall_untrained,
            "recall_at_1": recall,
            "active_random_triplets_untrained": active_untrained,
            "active_random_triplets": active,
        },
        tables=[
            Table(
                f"{N_CLASSES} classes, held-out recall@1 after {steps} steps of PK batches "
                f"({P}x{K}); share of random triplets with non-zero loss (margin 0.2)",
                [
                    "embedding",
                    "recall@1",
                    "active random triplets",
                    "mean d same class",
                    "mean d other class",
                ],  # fmt: skip
                rows,
            )
        ],
    )
    plain = ["triplet (random)", "contrastive", "InfoNCE"]
    worst = min(recall[name] for name in plain)
    result.claim(
        "Triplet (random triplets), contrastive and InfoNCE losses each learn an embedding "
        "whose nearest neighbours are far more often of the right class than in the raw input "
        "space or an untrained network (recall@1 at least 0.15 higher).",
        worst >= max(recall_raw, recall_untrained) + 0.15,
        f"worst of the three {worst:.3f}; raw {recall_raw:.3f}; untrained {recall_untrained:.3f}",
    )
    result.claim(
        "After training with random triplets, most random triplets already satisfy the margin: "
        "under 25% still have a non-zero loss (and gradient), against over 50% at the start. "
        "That is why triplet mining picks hard examples.",
        active["triplet (random)"] < 0.25 and active_untrained > 0.5,
        f"active share: untrained {active_untrained:.3f}, after random-triplet training "
        f"{active['triplet (random)']:.3f}",
    )
    rand, hard = early["triplet (random)"], early["triplet (batch-hard)"]
    result.claim(
        f"Batch-hard mining (hardest positive and negative in the batch) first squeezes the "
        f"embedding towards collapse: after {EARLY} steps its classes are < 0.5x as far apart "
        "as with random triplets; its final recall@1 is no better (at most 0.05 above).",
        hard[1] < 0.5 * rand[1]
        and recall["triplet (batch-hard)"] <= recall["triplet (random)"] + 0.05,
        f"mean distance to other classes at step {EARLY}: batch-hard {hard[1]:.3f}, random "
        f"{rand[1]:.3f}; final recall@1 {recall['triplet (batch-hard)']:.3f} vs "
        f"{recall['triplet (random)']:.3f}",
    )
    if not ctx.quick:
        result.notes.append(
            f"Mean distance to other classes after {steps} steps: batch-hard "
            f"{spread['triplet (batch-hard)'][1]:.3f}, random triplets "
            f"{spread['triplet (random)'][1]:.3f} (the squeeze is an early-training effect: "
            "given time, batch-hard training spreads the classes out again)."
        )
    return result
