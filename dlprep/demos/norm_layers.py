"""Batch, layer, instance, group and RMS norm: which axes, batch dependence, scale invariance.

What it shows, each recomputed by hand in float64 and compared with torch.nn:

- Axes, for an activation x of shape (N, C, H, W). Every one of these layers computes
  (x - mean) / sqrt(var + eps) (RMSNorm: x / sqrt(mean(x^2) + eps), no mean subtracted) and
  then a learned per-channel (or per-element) scale and shift. They differ only in the set of
  values the statistics are taken over:
  BatchNorm2d: per channel, over (N, H, W). LayerNorm([C, H, W]): per sample, over (C, H, W).
  InstanceNorm2d: per sample and channel, over (H, W). GroupNorm(G, C): per sample and group
  of C/G channels, over (C/G, H, W); G = 1 is LayerNorm's statistics, G = C InstanceNorm's
  (Wu & He 2018, "Group Normalization", arXiv 1803.08494). RMSNorm (Zhang & Sennrich 2019,
  arXiv 1910.07467): LayerNorm's axes without the mean.
- Batch dependence. In training mode a sample's BatchNorm output changes when the other samples
  in its batch change; the others are per-sample and do not. How much it moves shrinks with the
  batch size: at batch 2 the statistics come from two samples, which is why BatchNorm degrades
  with small batches and GroupNorm (batch-independent) replaces it there.
- A bias before BN is wasted: BN subtracts the per-channel mean, so a conv's per-channel bias
  cancels exactly (set bias=False; BN's beta plays its role).
- Scale invariance: BN(a W x) = BN(W x) for any a > 0, so the gradient with respect to W is
  orthogonal to W and shrinks as 1/a when the weights grow: the effective learning rate of
  the weights before a BN layer is lr / ||W||^2 (van Laarhoven 2017, arXiv 1706.05350;
  Arora, Li & Lyu 2019, arXiv 1812.03981). One concrete part of why BN tolerates large
  learning rates.
- Training, measured: a 10-layer ReLU MLP trained with SGD (momentum 0.9) at several learning
  rates, without normalisation (He init, its best chance: with PyTorch's default init such a
  stack barely trains) and with BatchNorm (default init). At the small rate both train; at the
  larger rates the plain net diverges (or stalls near chance) while the BN net still trains,
  though here its best loss is usually at the smallest rate: BN widens the range of usable
  learning rates rather than needing a large one.

What really happens beyond the textbook: the common explanation that BN works by reducing
"internal covariate shift" is disputed (Santurkar et al. 2018, arXiv 1805.11604); what is
measurable here is the scale invariance and the wider range of usable learning rates.

Run: dlprep demo norm-layers
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True


def _by_hand(x: torch.Tensor, dims: tuple[int, ...], eps: float, center: bool = True):
    """Normalise x over `dims` with the biased variance (what every norm layer uses)."""
    if center:
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + eps)
    return x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps)


def _group_norm_by_hand(x: torch.Tensor, groups: int, eps: float) -> torch.Tensor:
    n, c, h, w = x.shape
    xg = x.reshape(n, groups, c // groups, h, w)  # (N, G, C/G, H, W)
    return _by_hand(xg, (2, 3, 4), eps).reshape(n, c, h, w)


def _mlp(depth: int, width: int, d_in: int, d_out: int, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth - 1):
        layers.append(nn.Linear(d_in if i == 0 else width, width, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    eps = 1e-5
    dt = torch.float64

    # ---- 1. which axes: by hand vs torch.nn -------------------------------------------------
    n, c, h, w = 8, 6, 5, 5
    offsets = 3 * torch.randn(1, c, 1, 1, generator=g)  # channels with different means/scales
    scales = torch.rand(1, c, 1, 1, generator=g) * 3 + 0.5
    x = (torch.randn(n, c, h, w, generator=g) * scales + offsets).to(device, dt)  # (N, C, H, W)
    groups = 3
    layers = {
        "BatchNorm2d": (
            nn.BatchNorm2d(c, eps=eps),
            _by_hand(x, (0, 2, 3), eps),
            "(N, H, W)",
        ),
        "LayerNorm([C,H,W])": (
            nn.LayerNorm([c, h, w], eps=eps),
            _by_hand(x, (1, 2, 3), eps),
            "(C, H, W)",
        ),
        "InstanceNorm2d": (
            nn.InstanceNorm2d(c, eps=eps),
            _by_hand(x, (2, 3), eps),
            "(H, W)",
        ),
        f"GroupNorm({groups}, {c})": (
            nn.GroupNorm(groups, c, eps=eps),
            _group_norm_by_hand(x, groups, eps),
            f"({c // groups} channels, H, W)",
        ),
        "RMSNorm([C,H,W])": (
            nn.RMSNorm([c, h, w], eps=eps),
            _by_hand(x, (1, 2, 3), eps, center=False),
            "(C, H, W), no mean",
        ),
    }
    axis_err = {}
    for name, (layer, expected, _) in layers.items():
        layer = layer.to(device, dt).train()
        with torch.no_grad():
            axis_err[name] = (layer(x) - expected).abs().max().item()
    with torch.no_grad():
        gn1 = nn.GroupNorm(1, c, eps=eps).to(device, dt)(x)
        gn_c = nn.GroupNorm(c, c, eps=eps).to(device, dt)(x)
    gn1_vs_ln = (gn1 - _by_hand(x, (1, 2, 3), eps)).abs().max().item()
    gnc_vs_in = (gn_c - _by_hand(x, (2, 3), eps)).abs().max().item()
    rms_vs_ln = (layers["RMSNorm([C,H,W])"][1] - layers["LayerNorm([C,H,W])"][1]).abs().max()
    result.tables.append(
        Table(
            f"Statistics axes for x of shape (N, C, H, W) = {tuple(x.shape)}, train mode, float64",
            ["layer", "mean/var over", "max |torch - by hand|"],
            [[name, axes, f"{axis_err[name]:.1e}"] for name, (_, _, axes) in layers.items()]
            + [
                [
                    "GroupNorm(1, C) vs LayerNorm statistics",
                    "(C, H, W)",
                    f"{gn1_vs_ln:.1e}",
                ],
                [
                    "GroupNorm(C, C) vs InstanceNorm statistics",
                    "(H, W)",
                    f"{gnc_vs_in:.1e}",
                ],
            ],
        )
    )

    # ---- 2. batch dependence, and how it grows as the batch shrinks --------------------------
    # The data's true per-channel mean and std are known (offsets, scales): normalising with
    # them is what eval mode does with perfect running statistics. In train mode BN uses the
    # batch's statistics instead; the gap is the train/inference mismatch small batches cause.
    x0 = x[:1]  # (1, C, H, W): the same first sample in every batch
    population = (x0 - offsets.to(device, dt)) / torch.sqrt(scales.to(device, dt) ** 2 + eps)

    def companions(batch: int) -> torch.Tensor:
        others = torch.randn(batch - 1, c, h, w, generator=g) * scales + offsets
        return torch.cat([x0, others.to(device, dt)])  # (batch, C, H, W)

    trials = ctx.pick(16, 60)
    batch_sizes = [2, 4, 8, 32]
    moved = {}  # std over companion sets of sample 0's output: how much the batch moves it
    mismatch = {}  # rms of (train-mode output - output with the population statistics)
    for name in ("BatchNorm2d", f"GroupNorm({groups}, {c})", "LayerNorm([C,H,W])"):
        layer = layers[name][0].train()
        moved[name], mismatch[name] = {}, {}
        for b in batch_sizes:
            with torch.no_grad():
                outs = torch.stack([layer(companions(b))[0] for _ in range(trials)])
            moved[name][b] = outs.std(0).mean().item()  # outs: (trials, C, H, W)
            if name == "BatchNorm2d":  # (the per-sample layers normalise something else)
                mismatch[name][b] = (outs - population).pow(2).mean().sqrt().item()
    bn_moved, bn_mismatch = moved["BatchNorm2d"], mismatch["BatchNorm2d"]
    result.tables.append(
        Table(
            f"Sample 0's output in train mode next to {trials} different sets of batch "
            "companions: how much it moves (std), and how far it is from the output with the "
            "data's true statistics (rms)",
            ["layer", *(f"batch {b}: std / rms" for b in batch_sizes)],
            [
                [
                    name,
                    *(
                        f"{moved[name][b]:.3f} / {mismatch[name].get(b, float('nan')):.3f}"
                        for b in batch_sizes
                    ),
                ]
                for name in moved
            ],
        )
    )

    # ---- 3. a bias before BN cancels; BN is invariant to the scale of the weights ------------
    conv_b = nn.Conv2d(c, 8, 3, padding=1, bias=True).to(device, dt)
    conv_nb = nn.Conv2d(c, 8, 3, padding=1, bias=False).to(device, dt)
    with torch.no_grad():
        conv_nb.weight.copy_(conv_b.weight)
        conv_b.bias.copy_(5 * torch.randn(8, generator=g).to(device, dt))  # a large bias
    bn = nn.BatchNorm2d(8).to(device, dt).train()
    with torch.no_grad():
        bias_diff = (bn(conv_b(x)) - bn(conv_nb(x))).abs().max().item()

    def bn_out_and_grad(scale: float):
        """BN(scale * W x) and dL/dW for a fixed random loss, train mode."""
        weight = (scale * conv_nb.weight.detach()).clone().requires_grad_(True)
        y = bn(torch.nn.functional.conv2d(x, weight, padding=1))  # (N, 8, H, W)
        loss = (y * probe).sum()
        loss.backward()
        return y.detach(), weight.grad.detach(), weight.detach()

    probe = torch.randn(n, 8, h, w, generator=g).to(device, dt)  # a fixed upstream gradient
    y1, g1, w1 = bn_out_and_grad(1.0)
    y10, g10, _ = bn_out_and_grad(10.0)
    scale_out_diff = (y10 - y1).abs().max().item()
    grad_ratio = (g1.norm() / g10.norm()).item()  # expected 10
    cos_grad_weight = (torch.dot(g1.flatten(), w1.flatten()) / (g1.norm() * w1.norm())).item()

    # ---- 4. training a deep MLP with and without BN at several learning rates ----------------
    # The plain net gets He init (its best chance: with PyTorch's default init a 10-layer ReLU
    # MLP barely trains at all), the BN net PyTorch's default init.
    d_in, width, depth, classes = 20, 64, 10, 4
    n_train = 512
    teacher = torch.randn(d_in, classes, generator=g)
    x_tr = torch.randn(n_train, d_in, generator=g)
    y_tr = (x_tr @ teacher + 0.5 * torch.randn(n_train, classes, generator=g)).argmax(1)
    x_tr, y_tr = x_tr.to(device), y_tr.to(device)
    lrs = ctx.pick([0.03, 0.3, 1.0], [0.01, 0.03, 0.1, 0.3, 1.0, 3.0])
    steps = ctx.pick(100, 300)
    batch = 64
    order = torch.randint(0, n_train, (steps, batch), generator=g).to(device)  # same batches
    final: dict[str, dict[float, float]] = {"no norm, He init": {}, "BatchNorm": {}}
    init_loss = math.log(classes)
    for label, use_bn in (("no norm, He init", False), ("BatchNorm", True)):
        for lr in lrs:
            torch.manual_seed(ctx.seed)  # the same init for every rate
            model = _mlp(depth, width, d_in, classes, use_bn).to(device)
            if not use_bn:
                for layer in model[:-1]:
                    if isinstance(layer, nn.Linear):
                        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                        nn.init.zeros_(layer.bias)
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            for step in range(steps):
                idx = order[step]
                loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                full = nn.functional.cross_entropy(model(x_tr), y_tr).item()
            final[label][lr] = full if math.isfinite(full) else float("inf")
    result.tables.append(
        Table(
            f"{depth}-layer ReLU MLP (width {width}), SGD momentum 0.9, {steps} steps of batch "
            f"{batch}: training loss (eval mode; chance = {init_loss:.2f}, inf = diverged)",
            ["", *(f"lr {lr}" for lr in lrs)],
            [[label, *(f"{final[label][lr]:.3f}" for lr in lrs)] for label in final],
        )
    )

    # ---- metrics and claims ------------------------------------------------------------------
    result.metrics = {
        "axis_max_error": axis_err,
        "groupnorm1_vs_layernorm": gn1_vs_ln,
        "groupnormC_vs_instancenorm": gnc_vs_in,
        "rmsnorm_vs_layernorm_difference": rms_vs_ln.item(),
        "sample0_moved": {k: {str(b): v for b, v in d.items()} for k, d in moved.items()},
        "bn_sample0_mismatch": {str(b): v for b, v in bn_mismatch.items()},
        "bias_before_bn_difference": bias_diff,
        "bn_output_change_weights_x10": scale_out_diff,
        "grad_norm_ratio_w_over_10w": grad_ratio,
        "cos_grad_weight": cos_grad_weight,
        "final_train_loss": {k: {str(lr): v for lr, v in d.items()} for k, d in final.items()},
    }
    result.claim(
        "BatchNorm takes its statistics per channel over (N, H, W), LayerNorm per sample over "
        "(C, H, W), InstanceNorm per sample and channel over (H, W), GroupNorm per sample over "
        "groups of channels; RMSNorm is LayerNorm's axes without the mean (all match by hand).",
        max(axis_err.values()) < 1e-10,
        ", ".join(f"{k}: {v:.1e}" for k, v in axis_err.items()),
    )
    result.claim(
        "GroupNorm with 1 group uses LayerNorm's statistics, with C groups InstanceNorm's.",
        gn1_vs_ln < 1e-10 and gnc_vs_in < 1e-10,
        f"GN(1) vs LN {gn1_vs_ln:.1e}; GN(C) vs IN {gnc_vs_in:.1e}",
    )
    others_fixed = max(moved[k][b] for k in moved if k != "BatchNorm2d" for b in batch_sizes)
    result.claim(
        "In training mode a sample's BatchNorm output depends on its batch companions; "
        "GroupNorm's and LayerNorm's do not.",
        bn_moved[2] > 1e-2 and others_fixed < 1e-12,
        f"std of sample 0's output over companion sets at batch 2: BN {bn_moved[2]:.3f}, "
        f"GN/LN at most {others_fixed:.1e}",
    )
    result.claim(
        "The smaller the batch, the further BN's training-mode output is from what the data's "
        "true statistics (eval mode) give: >= 3x further at batch 2 than at batch 32.",
        bn_mismatch[2] >= 3 * bn_mismatch[32] and bn_mismatch[2] > bn_mismatch[8] > bn_mismatch[32],
        ", ".join(f"batch {b}: {v:.3f}" for b, v in bn_mismatch.items()),
    )
    result.claim(
        "A conv bias before BatchNorm cancels exactly (BN subtracts the channel mean), so "
        "conv layers followed by BN use bias=False.",
        bias_diff < 1e-10,
        f"max |BN(conv with bias) - BN(conv without)| = {bias_diff:.1e} (bias ~5)",
    )
    result.claim(
        "BN makes the layer invariant to the scale of its weights: BN(10 W x) = BN(W x) (up to "
        "the eps in the variance), and the gradient w.r.t. W shrinks 10x and is orthogonal to W.",
        scale_out_diff < 1e-3 and abs(grad_ratio - 10) < 1e-2 and abs(cos_grad_weight) < 1e-5,
        f"output change {scale_out_diff:.1e}; |grad(W)| / |grad(10W)| = {grad_ratio:.4f}; "
        f"cos(grad, W) = {cos_grad_weight:.1e}",
    )
    plain, with_bn = final["no norm, He init"], final["BatchNorm"]
    result.claim(
        "At a small learning rate (0.03) both nets train; at 0.3 only the BN net does (the plain "
        "one stalls near chance or diverges), and at 1.0 the plain net diverges while the BN "
        "net stays finite and below chance: BN widens the range of usable learning rates.",
        plain[0.03] < 0.5 * init_loss
        and with_bn[0.03] < 0.5 * init_loss
        and with_bn[0.3] < 0.5 * init_loss
        and plain[0.3] > 0.5 * init_loss
        and plain[1.0] == float("inf")
        and with_bn[1.0] < init_loss,
        "; ".join(
            f"{k}: " + ", ".join(f"lr {lr}: {v:.3f}" for lr, v in d.items())
            for k, d in final.items()
        ),
    )
    result.notes.append(
        f"RMSNorm differs from LayerNorm only by the mean it does not subtract: here up to "
        f"{rms_vs_ln.item():.2f} on inputs with large per-channel offsets; on centred "
        "activations the two nearly agree, which is why LLMs can drop the mean computation."
    )
    return result
