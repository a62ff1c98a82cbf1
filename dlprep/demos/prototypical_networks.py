"""Prototypical networks: class means in a learned embedding, trained by N-way K-shot episodes.

Snell, Swersky & Zemel (2017, "Prototypical Networks for Few-shot Learning",
arXiv 1703.05175). Each episode samples N classes, K labelled "support" examples per class and
some "query" examples. The prototype of a class is the mean embedding of its support
examples; a query is classified by a softmax over negative squared Euclidean distances to the
prototypes; the loss is the cross-entropy on the queries. Training repeats this on episodes
from BASE classes, and the test uses episodes from NOVEL classes never seen in training.

Synthetic data (made here): each class is a Gaussian cluster in an 8-d latent space, seen
through a fixed random nonlinear map (16 informative input features) plus 16 pure-noise
features with a larger spread. In the raw input space the noise dominates distances.

What it measures:
- With squared Euclidean distance the prototype classifier is a LINEAR classifier on the
  embedding: -|f - c_k|^2 = 2 c_k . f - |c_k|^2 - |f|^2, and the last term is the same for
  every class. The demo checks that the two forms give the same probabilities.
- On NOVEL classes, nearest-prototype classification in the learned embedding beats the same
  rule in the raw input space (and in a random, untrained embedding) by a wide margin: the
  episodes taught the network which directions separate classes in general, not just the
  training classes.
- 5-shot is more accurate than 1-shot: averaging more support examples gives a better prototype.
- Evaluation is reported as mean accuracy over many test episodes with a 95% confidence
  interval, as few-shot papers do.

Run: dlprep demo prototypical-networks
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

LATENT, INFORMATIVE, NOISE_DIMS = 8, 16, 16


class World:
    """A fixed way of turning class latents into observed inputs (the same for all classes)."""

    def __init__(self, g: torch.Generator):
        self.mix = torch.randn(LATENT, INFORMATIVE, generator=g) / math.sqrt(LATENT)

    def classes(self, n: int, g: torch.Generator) -> torch.Tensor:
        return 1.5 * torch.randn(n, LATENT, generator=g)  # (n, LATENT) class centres

    def sample(self, centres: torch.Tensor, per_class: int, g: torch.Generator) -> torch.Tensor:
        """(n_classes, per_class, 32) inputs: informative features then noise features."""
        n = centres.shape[0]
        z = centres[:, None] + 0.6 * torch.randn(n, per_class, LATENT, generator=g)
        informative = torch.tanh(z @ self.mix)  # (n, per_class, 16)
        noise = 1.5 * torch.randn(n, per_class, NOISE_DIMS, generator=g)
        return torch.cat([informative, noise], dim=-1)


def embed_net() -> nn.Module:
    return nn.Sequential(nn.Linear(INFORMATIVE + NOISE_DIMS, 64), nn.ReLU(), nn.Linear(64, 32))


def episode_logits(f_support: torch.Tensor, f_query: torch.Tensor) -> torch.Tensor:
    """f_support (N, K, D), f_query (Q, D) -> (Q, N) logits = -squared distance to prototypes."""
    prototypes = f_support.mean(dim=1)  # (N, D): the class means
    return -(torch.cdist(f_query, prototypes) ** 2)


def evaluate(embed, world, n_way, k_shot, episodes, g, device) -> tuple[float, float]:
    """Mean accuracy over test episodes on NOVEL classes and its 95% confidence half-width."""
    accs = []
    with torch.no_grad():
        for _ in range(episodes):
            x = world.sample(world.classes(n_way, g), k_shot + 15, g).to(device)
            support, query = x[:, :k_shot], x[:, k_shot:].reshape(-1, x.shape[-1])
            labels = torch.arange(n_way, device=device).repeat_interleave(15)
            logits = episode_logits(embed(support), embed(query))
            accs.append((logits.argmax(dim=1) == labels).float().mean().item())
    mean = sum(accs) / len(accs)
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (len(accs) - 1))
    return mean, 1.96 * std / math.sqrt(len(accs))


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    world = World(g)
    n_way = 5

    # ---- 1. prototype classifier == linear classifier -----------------------------------------
    f_s = torch.randn(n_way, 5, 32, generator=g, dtype=torch.float64)
    f_q = torch.randn(20, 32, generator=g, dtype=torch.float64)
    c = f_s.mean(dim=1)  # (N, D)
    linear = 2 * f_q @ c.T - (c**2).sum(dim=1)  # weights 2 c_k, bias -|c_k|^2
    gap = (episode_logits(f_s, f_q).softmax(1) - linear.softmax(1)).abs().max().item()
    result.claim(
        "With squared Euclidean distance a prototype classifier is linear in the embedding: "
        "softmax(-|f - c_k|^2) equals softmax(2 c_k . f - |c_k|^2).",
        gap < 1e-12,
        f"max probability difference {gap:.1e} (float64, 5-way, 20 queries)",
    )

    # ---- 2. episodic training on base classes ------------------------------------------------
    embed = embed_net().to(device)
    opt = torch.optim.Adam(embed.parameters(), lr=1e-3)
    for _ in range(ctx.pick(300, 1500)):
        x = world.sample(world.classes(n_way, g), 5 + 10, g).to(device)  # a 5-way 5-shot episode
        support, query = x[:, :5], x[:, 5:].reshape(-1, x.shape[-1])
        labels = torch.arange(n_way, device=device).repeat_interleave(10)
        logits = episode_logits(embed(support), embed(query))  # (N * 10, N)
        loss = nn.functional.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    # ---- 3. test on novel classes -----------------------------------------------------------
    episodes = ctx.pick(200, 1000)
    random_embed = embed_net().to(device)
    spaces = {"raw input": nn.Identity(), "random embedding": random_embed, "ProtoNet": embed}
    acc = {}
    for name, f in spaces.items():
        for k in (1, 5):
            acc[(name, k)] = evaluate(f, world, n_way, k, episodes, g, device)
    result.tables.append(
        Table(
            f"Nearest-prototype accuracy on NOVEL classes, 5-way, mean ± 95% CI over {episodes} "
            "episodes (chance 0.2)",
            ["space", "1-shot", "5-shot"],
            [
                [name] + [f"{acc[(name, k)][0]:.3f} ± {acc[(name, k)][1]:.3f}" for k in (1, 5)]
                for name in spaces
            ],  # fmt: skip
        )
    )
    proto1, proto5 = acc[("ProtoNet", 1)][0], acc[("ProtoNet", 5)][0]
    raw5, rnd5 = acc[("raw input", 5)][0], acc[("random embedding", 5)][0]
    result.claim(
        "On classes never seen in training, the episodically trained embedding beats nearest "
        "prototypes in the raw input space and in a random embedding by more than 10 points "
        "(5-shot).",
        proto5 > max(raw5, rnd5) + 0.10,
        f"5-shot: ProtoNet {proto5:.3f}, raw {raw5:.3f}, random embedding {rnd5:.3f}",
    )
    result.claim(
        "5-shot beats 1-shot by more than 5 points: a mean of five examples is a better "
        "prototype than one example.",
        proto5 > proto1 + 0.05,
        f"ProtoNet 1-shot {proto1:.3f}, 5-shot {proto5:.3f}",
    )
    result.metrics = {f"{n.replace(' ', '_')}_{k}shot": acc[(n, k)][0] for n, k in acc}
    return result
