"""A linear probe: how linearly separable frozen features are (the standard evaluation of
self-supervised representations), shared by the contrastive demos."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
