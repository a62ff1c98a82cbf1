"""Pieces the self-supervised demos share (contrastive-learning, moco): a synthetic world
whose inputs mix a class's content with nuisance style, and the linear probe that evaluates
frozen features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

D_IN, D_CONTENT, D_STYLE, CLASSES = 32, 4, 12, 10


class World:
    """Generates inputs from (content, style) through a fixed random non-linear mixing."""

    def __init__(self, g: torch.Generator):
        self.centers = F.normalize(torch.randn(CLASSES, D_CONTENT, generator=g), dim=1) * 2
        self.w1 = torch.randn(D_CONTENT + D_STYLE, 64, generator=g) / 4
        self.w2 = torch.randn(64, D_IN, generator=g) / 8

    def labels(self, n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randint(0, CLASSES, (n,), generator=g)

    def content(self, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.centers[y] + 0.4 * torch.randn(y.shape[0], D_CONTENT, generator=g)

    def view(self, c: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """An augmented view: same content, fresh style (the nuisance), a little noise."""
        style = torch.randn(c.shape[0], D_STYLE, generator=g)
        x = torch.tanh(torch.cat([c, style], 1) @ self.w1) @ self.w2
        return x + 0.05 * torch.randn(x.shape, generator=g)


def linear_probe(train_x, train_y, test_x, test_y, steps: int = 300) -> float:
    """Logistic regression on frozen, standardised features; its test accuracy."""
    classes = int(max(train_y.max(), test_y.max())) + 1
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    clf = nn.Linear(train_x.shape[1], classes).to(train_x.device)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        loss = F.cross_entropy(clf(train_x), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (clf(test_x).argmax(1) == test_y).float().mean().item()
