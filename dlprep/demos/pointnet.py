"""PointNet: a shared per-point MLP + max pooling is invariant to the order of the points.

What it shows, measured. A point cloud is a *set*: the same shape can arrive with its points
in any order (a LiDAR or depth sensor's order depends on the scan, not on the object).
PointNet (Qi et al. 2017, arXiv 1612.00593) makes the network a symmetric function of its
points: the same small MLP h is applied to every point independently (a 1x1 convolution
over the points), then a max over the points gives one global feature vector, and a
classifier reads it: f(x_1..x_n) = g(max_i h(x_i)). Any reordering of the points gives the
same max, so the output is exactly permutation-invariant by construction.

The baseline flattens the n x 3 coordinates into one vector and feeds an MLP, as for a
fixed-layout input. The demo trains both on synthetic shapes (sphere, cube, cylinder and
cone surfaces, randomly rotated about the vertical, stretched and noisy) whose points arrive
sorted by height, as a scanner might deliver them. Measured:

- Permuting the points changes PointNet's logits by nothing (round-off at most) and the flat
  MLP's a lot: on the same test shapes with the points shuffled, the flat MLP's accuracy
  collapses to about chance while PointNet's is identical. The flat MLP learned "the 5th
  point is usually here", a feature of the ordering, not of the shape. It is also worse on
  the order it was trained on: with no weight sharing across points it has many more
  weights to fit from the same clouds (PointNet's h sees every point of every cloud as a
  training example).
- Max pooling selects: each of the d global features comes from one point, so at most d
  "critical points" decide the output (the paper's critical point set). Deleting all the
  non-critical points leaves the global feature, and so the prediction, exactly unchanged;
  here they are a small minority of the cloud (about a fifth of 128 points).
- The same weights run on any number of points: classify clouds with 4x more points than in
  training without retraining (the max over more samples of the same surface changes a little).

Invariance alone is not the whole story: PointNet sees each point in isolation before the
max, so it captures no local structure; PointNet++ (Qi et al. 2017, arXiv 1706.02413) applies
PointNets to local neighbourhoods hierarchically, and the voxel/pillar encoders of 3-D
detectors (VoxelNet, PointPillars) use the same shared-MLP-plus-max block inside each cell.

Run: dlprep demo pointnet
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

SHAPES = ["sphere", "cube", "cylinder", "cone"]


def make_clouds(n: int, n_points: int, g: torch.Generator):
    """(n, n_points, 3) surface samples of random shapes, sorted by height (z); labels (n,)."""
    labels = torch.randint(0, len(SHAPES), (n,), generator=g)
    u = torch.rand(n, n_points, 3, generator=g) * 2 - 1  # uniform in [-1, 1]^3
    clouds = torch.empty(n, n_points, 3)
    # sphere: normalised Gaussian directions
    s = torch.randn(n, n_points, 3, generator=g)
    sphere = s / s.norm(dim=-1, keepdim=True)
    # cube surface: push one random coordinate of a uniform point to +-1
    face = torch.randint(0, 3, (n, n_points), generator=g)
    sign = torch.randint(0, 2, (n, n_points), generator=g).float() * 2 - 1
    cube = u.clone()
    cube.scatter_(2, face[..., None], sign[..., None])
    # cylinder side and cone side: an angle and a height
    angle = 2 * math.pi * u[..., 0]
    z = u[..., 1]
    ring = torch.stack([angle.cos(), angle.sin()], -1)  # (n, n_points, 2)
    cylinder = torch.cat([ring, z[..., None]], -1)
    cone = torch.cat([ring * (1 - z[..., None]) / 2 * 1.6, z[..., None]], -1)
    for k, shape in enumerate((sphere, cube, cylinder, cone)):
        clouds[labels == k] = shape[labels == k]
    # random rotation about z, random stretch, noise
    theta = 2 * math.pi * torch.rand(n, generator=g)
    c, s_ = theta.cos(), theta.sin()
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s_, s_, c, 1
    stretch = 0.8 + 0.4 * torch.rand(n, 1, 3, generator=g)
    clouds = (clouds @ rot.transpose(1, 2)) * stretch
    clouds = clouds + 0.03 * torch.randn(clouds.shape, generator=g)
    order = clouds[..., 2].argsort(dim=1)  # the "scanner" delivers points by height
    clouds = torch.gather(clouds, 1, order[..., None].expand(-1, -1, 3))
    return clouds, labels


class PointNet(nn.Module):
    """g(max_i h(x_i)): h is shared by all points; max makes it a function of the set."""

    def __init__(self, width: int = 64, n_classes: int = 4):
        super().__init__()
        self.h = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, width), nn.ReLU())
        self.g = nn.Sequential(nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def global_feature(self, pts: torch.Tensor) -> torch.Tensor:
        return self.h(pts).amax(dim=1)  # (B, N, 3) -> (B, N, width) -> (B, width)

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        return self.g(self.global_feature(pts))


def flat_mlp(n_points: int, n_classes: int = 4) -> nn.Sequential:
    """Treats the cloud as a fixed-layout vector of n_points * 3 numbers."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * n_points, 128), nn.ReLU(),
        nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, n_classes),
    )  # fmt: skip


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    n_points = 32
    x_tr, y_tr = make_clouds(ctx.pick(1024, 4096), n_points, g)
    x_te, y_te = make_clouds(1000, n_points, g)
    perm = torch.stack([torch.randperm(n_points, generator=g) for _ in range(len(x_te))])
    x_sh = torch.gather(x_te, 1, perm[..., None].expand(-1, -1, 3))  # same shapes, shuffled
    x_tr, y_tr, x_te, y_te, x_sh = (t.to(device) for t in (x_tr, y_tr, x_te, y_te, x_sh))

    models = {"PointNet": PointNet().to(device), "flat MLP": flat_mlp(n_points).to(device)}
    steps = ctx.pick(300, 1500)
    for model in models.values():
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        batch_g = torch.Generator().manual_seed(ctx.seed + 1)
        for _ in range(steps):
            idx = torch.randint(0, len(x_tr), (64,), generator=batch_g).to(device)
            loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()

    acc, logit_change, flips = {}, {}, {}
    for name, model in models.items():
        with torch.no_grad():
            a, b = model(x_te), model(x_sh)
        acc[name] = (accuracy(model, x_te, y_te), accuracy(model, x_sh, y_te))
        logit_change[name] = (a - b).abs().max().item()
        flips[name] = (a.argmax(1) != b.argmax(1)).float().mean().item()
    result.tables.append(
        Table(
            f"Test accuracy on 1000 clouds of {n_points} points, trained {steps} steps on "
            "points sorted by height (chance 25%)",
            ["model", "sorted test", "shuffled test", "max |logit change|", "predictions changed"],
            [
                [
                    k,
                    f"{acc[k][0]:.1%}",
                    f"{acc[k][1]:.1%}",
                    f"{logit_change[k]:.1e}",
                    f"{flips[k]:.1%}",
                ]
                for k in models
            ],
        )  # fmt: skip
    )

    # critical points: which point wins the max in each of the global feature's channels
    pn = models["PointNet"]
    many = 4 * n_points
    x_big, y_big = make_clouds(200, many, g)
    x_big, y_big = x_big.to(device), y_big.to(device)
    with torch.no_grad():
        feats = pn.h(x_big)  # (B, many, width)
        winners = feats.argmax(dim=1)  # (B, width): the point behind each channel's max
        n_critical, same_feature, same_pred = [], True, 0
        for i in range(len(x_big)):
            crit = winners[i].unique()
            n_critical.append(len(crit))
            full = pn.global_feature(x_big[i : i + 1])
            only = pn.global_feature(x_big[i : i + 1, crit])  # drop every non-critical point
            same_feature &= torch.equal(full, only)
            same_pred += int(pn.g(full).argmax() == pn.g(only).argmax())
    acc_big = accuracy(pn, x_big, y_big)
    mean_crit = sum(n_critical) / len(n_critical)
    width = winners.shape[1]

    result.metrics = {
        "accuracy_sorted_test": {k: v[0] for k, v in acc.items()},
        "accuracy_shuffled_test": {k: v[1] for k, v in acc.items()},
        "max_logit_change_when_shuffled": logit_change,
        "predictions_changed_when_shuffled": flips,
        f"pointnet_accuracy_on_{many}_points": acc_big,
        "mean_critical_points": mean_crit,
        "max_critical_points": max(n_critical),
    }
    pn_acc, mlp_acc = acc["PointNet"], acc["flat MLP"]
    result.claim(
        "PointNet's output is invariant to the order of the points (shuffling changes its "
        "logits by round-off at most); the flat MLP's predictions change for many clouds.",
        logit_change["PointNet"] < 1e-4 and flips["flat MLP"] >= 0.2,
        f"max |logit change|: PointNet {logit_change['PointNet']:.1e}, flat MLP "
        f"{logit_change['flat MLP']:.1e}; predictions changed: PointNet "
        f"{flips['PointNet']:.1%}, flat MLP {flips['flat MLP']:.1%}",
    )
    result.claim(
        "On the test shapes in the trained order, PointNet is accurate (>= 90%) and beats the "
        "flat MLP (which still learns something: >= 50%, chance 25%); with the points "
        "shuffled, the flat MLP loses >= 25 points of accuracy and PointNet none.",
        pn_acc[0] >= 0.9
        and pn_acc[0] > mlp_acc[0] >= 0.5
        and mlp_acc[0] - mlp_acc[1] >= 0.25
        and pn_acc[0] == pn_acc[1],
        f"PointNet {pn_acc[0]:.1%} -> {pn_acc[1]:.1%}; flat MLP {mlp_acc[0]:.1%} -> "
        f"{mlp_acc[1]:.1%}",
    )
    result.claim(
        f"Max pooling picks at most {width} critical points (one per feature channel), a "
        "small minority of the cloud (on average <= 1/3 of it); deleting all the other points "
        "leaves the global feature exactly unchanged.",
        mean_crit <= many / 3 and same_feature and same_pred == len(x_big),
        f"{many}-point clouds: {mean_crit:.1f} critical points on average (max "
        f"{max(n_critical)}); global feature identical for all {len(x_big)}: {same_feature}",
    )
    result.claim(
        f"The same weights classify clouds of {many} points (trained on {n_points}) with "
        "accuracy within 10 points of the trained size.",
        acc_big >= pn_acc[0] - 0.10,
        f"accuracy: {n_points} points {pn_acc[0]:.1%}, {many} points {acc_big:.1%}",
    )
    result.notes.append(
        "Training the flat MLP on randomly shuffled clouds (augmentation) would make it only "
        "approximately invariant, and it must then learn the symmetry from data; PointNet has "
        "it built in, as a CNN has translation equivariance built in."
    )
    return result
