"""SimCLR-style contrastive learning (NT-Xent / InfoNCE) on synthetic data, then a linear probe.

What it shows, measured. The data: each 32-d input is a fixed random non-linear mixing of a
4-d "content" vector (which carries the class: 10 clusters) and a 12-d "style" vector of
large nuisance variation. An augmentation keeps the content and redraws the style, as
cropping and colour jitter keep an image's object and change its appearance. No labels are
used to train the encoder.

- SimCLR (Chen et al. 2020, arXiv 2002.05709): two augmented views of each of N inputs,
  encoder f then projection head g, cosine similarities / tau, and for each of the 2N views
  a softmax cross-entropy whose correct class is its partner among the 2N - 1 others (the
  NT-Xent loss, an InfoNCE loss). The loss starts near log(2N - 1) (chance) and falls.
- Evaluation by linear probe with few labels (10 per class): a logistic regression on frozen
  features. Contrastive features beat the same encoder at random init and the raw input,
  because the encoder learned to ignore what the augmentation changes (style) and keep what
  it preserves (content): the choice of augmentations defines what "similar" means.
- Where to probe: SimCLR found the representation BEFORE the projection head (h) better than
  after it (z); the demo measures both and reports what happens here (no claim).
- Temperature: the demo trains with tau = 0.1 and tau = 1.0. The gradient pushes each
  negative away in proportion to its softmax weight, so a low temperature concentrates the
  push on the hardest negatives (the most similar ones; Wang & Liu 2021, arXiv 2012.09740),
  while tau = 1.0 spreads it almost uniformly, and caps how low the loss can go: cosines lie in
  [-1, 1], so the loss is at least log(1 + (2N - 2) e^(-2 / tau)). What really happens here:
  the probe accuracy is about the same for both temperatures (reported, no claim); SimCLR's
  temperature table shows a large effect on ImageNet, so how much tau matters depends on the
  data and the rest of the recipe.
- InfoNCE as a bound: log(2N - 1) - loss is a lower bound on the mutual information between
  the two views' representations (Oord et al. 2018, arXiv 1807.03748), and it can never exceed
  log(2N - 1) however much information the views share: the bound saturates, one reason
  contrastive methods want many negatives.

Run: dlprep demo contrastive-learning
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table
from dlprep.demos._ssl import CLASSES, D_IN, World, linear_probe

STATISTICAL = True


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR's loss: each of the 2N views must pick its partner among the other 2N - 1."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d) on the unit sphere
    sim = z @ z.T / tau  # (2N, 2N) cosine similarity / temperature
    sim.fill_diagonal_(float("-inf"))  # a view is not its own candidate
    n = z1.shape[0]
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def encoder() -> nn.Module:
    return nn.Sequential(nn.Linear(D_IN, 128), nn.ReLU(), nn.Linear(128, 64))


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    world = World(g)
    batch, steps = 128, ctx.pick(250, 1500)
    result = DemoResult()

    # labelled data for the probe only: 10 labels per class, and a test set
    y_lab = torch.arange(CLASSES).repeat(10)
    y_test = torch.randint(0, CLASSES, (2000,), generator=g)
    x_lab = world.view(world.content(y_lab, g), g).to(device)
    x_test = world.view(world.content(y_test, g), g).to(device)
    y_lab, y_test = y_lab.to(device), y_test.to(device)

    def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    runs = {}
    for tau in (0.1, 1.0):
        torch.manual_seed(ctx.seed)  # the same initial weights for both temperatures
        f, head = encoder().to(device), nn.Sequential(nn.ReLU(), nn.Linear(64, 32)).to(device)
        f_random = encoder().to(device)
        f_random.load_state_dict(f.state_dict())  # the untrained encoder, kept for comparison
        opt = torch.optim.Adam([*f.parameters(), *head.parameters()], lr=1e-3)
        losses = []
        for _ in range(steps):
            y = torch.randint(0, CLASSES, (batch,), generator=g)  # unused by the loss
            c = world.content(y, g)
            v1, v2 = world.view(c, g).to(device), world.view(c, g).to(device)  # two views
            loss = nt_xent(head(f(v1)), head(f(v2)), tau)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs[tau] = {"f": f, "head": head, "losses": losses, "random": f_random}

    best = runs[0.1]
    f, head = best["f"], best["head"]
    acc = {
        "raw input": linear_probe(x_lab, y_lab, x_test, y_test),
        "random encoder h": linear_probe(
            features(best["random"], x_lab), y_lab, features(best["random"], x_test), y_test
        ),
        "contrastive h (tau 0.1)": linear_probe(
            features(f, x_lab), y_lab, features(f, x_test), y_test
        ),
        "contrastive z = g(h) (tau 0.1)": linear_probe(
            features(nn.Sequential(f, head), x_lab),
            y_lab,
            features(nn.Sequential(f, head), x_test),
            y_test,
        ),
        "contrastive h (tau 1.0)": linear_probe(
            features(runs[1.0]["f"], x_lab), y_lab, features(runs[1.0]["f"], x_test), y_test
        ),
    }
    chance_loss = math.log(2 * batch - 1)
    # share of the softmax weight over negatives that the 5 hardest negatives get, per tau
    hard = {}
    with torch.no_grad():
        c = world.content(torch.randint(0, CLASSES, (batch,), generator=g), g)
        v1, v2 = world.view(c, g).to(device), world.view(c, g).to(device)
        for tau, r in runs.items():
            z1 = F.normalize(r["head"](r["f"](v1)), dim=1)
            z2 = F.normalize(r["head"](r["f"](v2)), dim=1)
            z = torch.cat([z1, z2])  # (2N, d)
            sim = z1 @ z.T  # (N, 2N): anchor i against every view
            n = z1.shape[0]
            drop = torch.zeros_like(sim, dtype=torch.bool)
            drop[torch.arange(n), torch.arange(n)] = True  # itself
            drop[torch.arange(n), torch.arange(n) + n] = True  # its positive
            w = torch.softmax((sim / tau).masked_fill(drop, float("-inf")), dim=1)  # negatives
            hard[tau] = w.topk(5, dim=1).values.sum(1).mean().item()
    final_loss = {tau: sum(r["losses"][-20:]) / 20 for tau, r in runs.items()}
    bound = chance_loss - final_loss[0.1]  # InfoNCE lower bound on I(view1; view2), nats

    result.tables.append(
        Table(
            f"Linear probe, 10 labels per class, {CLASSES} classes (chance {1 / CLASSES:.2f})",
            ["features", "test accuracy"],
            [[k, f"{v:.3f}"] for k, v in acc.items()],
        )
    )
    result.curves.append(
        Curve(
            f"NT-Xent loss, batch {batch} (chance log(2N-1) = {chance_loss:.2f})",
            "step",
            {f"tau = {tau}": r["losses"] for tau, r in runs.items()},
        )
    )
    result.metrics = {
        "probe_accuracy": acc,
        "initial_loss": {str(t): r["losses"][0] for t, r in runs.items()},
        "final_loss": {str(t): v for t, v in final_loss.items()},
        "chance_loss": chance_loss,
        "infonce_mi_lower_bound_nats": bound,
        "top5_negative_weight": {str(t): v for t, v in hard.items()},
    }
    first = runs[0.1]["losses"][0]
    result.claim(
        "The NT-Xent loss starts near chance, log(2N - 1), and falls well below it.",
        abs(first - chance_loss) < 0.5 and final_loss[0.1] < chance_loss - 1.5,
        f"first step {first:.2f}, last 20 steps {final_loss[0.1]:.2f}, chance {chance_loss:.2f}",
    )
    c_h = acc["contrastive h (tau 0.1)"]
    result.claim(
        "A linear probe on the contrastive features beats the same encoder at random init and "
        "the raw input by >= 10 points, with only 10 labels per class.",
        c_h >= acc["random encoder h"] + 0.10 and c_h >= acc["raw input"] + 0.10,
        f"contrastive {c_h:.3f}, random encoder {acc['random encoder h']:.3f}, raw "
        f"{acc['raw input']:.3f}",
    )
    floor = math.log(1 + (2 * batch - 2) * math.exp(-2 / 1.0))
    result.claim(
        "A low temperature focuses the loss on hard negatives: at tau = 0.1 the 5 most similar "
        "negatives take >= 3x the softmax weight they get at tau = 1.0.",
        hard[0.1] >= 3 * hard[1.0],
        f"weight on the top-5 of {2 * batch - 2} negatives: tau 0.1 {hard[0.1]:.3f}, tau 1.0 "
        f"{hard[1.0]:.3f}",
    )
    result.notes.append(
        f"At tau = 1.0 the loss cannot fall below log(1 + (2N - 2) e^(-2/tau)) = {floor:.2f} "
        f"(cosines lie in [-1, 1]); it ends at {final_loss[1.0]:.2f}, vs {final_loss[0.1]:.2f} "
        "at tau = 0.1."
    )
    result.notes.append(
        f"InfoNCE lower bound on the views' mutual information: log(2N - 1) - loss = "
        f"{bound:.2f} nats. Since the loss is >= 0, this estimate can never exceed "
        f"log(2N - 1) = {chance_loss:.2f} nats, however much information the views share."
    )
    result.notes.append(
        f"Probe accuracy by temperature: tau 0.1 {c_h:.3f}, tau 1.0 "
        f"{acc['contrastive h (tau 1.0)']:.3f}: no reliable difference on this toy."
    )
    result.notes.append(
        f"Probe before vs after the projection head: h {c_h:.3f}, z "
        f"{acc['contrastive z = g(h) (tau 0.1)']:.3f} (SimCLR reports h better by over 10 "
        "points on ImageNet; a toy this small need not reproduce that)."
    )
    return result
