"""Depthwise-separable convolution (MobileNet): weights and FLOPs vs a standard conv, measured.

What it shows:

- A standard k×k convolution from C_in to C_out channels has k²·C_in·C_out weights and does
  that many multiply-adds (MACs) per output pixel. MobileNet (Howard et al. 2017, arXiv
  1704.04861) factorises it into a *depthwise* k×k convolution (groups = C_in: one k×k filter
  per channel, k²·C_in weights) followed by a *pointwise* 1×1 convolution that mixes the
  channels (C_in·C_out). The cost ratio is 1/C_out + 1/k²: ~8-9x fewer for 3×3 kernels.
  Counted from the layers' weights and from the shapes they actually see (forward hooks).
- The depthwise part never mixes channels: output channel c depends only on input channel c
  (measured by gradients). That is why the pointwise 1×1 is needed.
- Fewer MACs is not the same speed-up: the depthwise convolution does little arithmetic per
  value it reads or writes (~4.5 MACs per element here, against hundreds for the standard
  conv), so it is limited by memory traffic and runs far below the hardware's peak. The
  forward times on this device are shown, not claimed: on the shared 2-core CPU this demo was
  written on, the separable block was 2-5x faster for an 8.4x MAC ratio in most runs, and the
  timings swung too much from run to run to make a claim that always holds. (MobileNet V1's
  paper reports that it spends 95% of its computation time in the 1×1 convolutions, dense
  matrix multiplications that run efficiently.)
- ShuffleNet (Zhang et al. 2017, arXiv 1707.01083) makes the 1×1 convolutions grouped as well;
  stacked grouped convolutions never exchange information between groups, so it inserts a
  channel shuffle. Measured: without the shuffle, output group i depends only on input group
  i; with it, every output group depends on every input group.
- Where FLOPs come from, the basis of EfficientNet's compound scaling (Tan & Le 2019, arXiv
  1905.11946): a conv net's FLOPs grow ~linearly with depth and ~quadratically with width and
  with input resolution, so EfficientNet scales depth by alpha^phi, width by beta^phi and
  resolution by gamma^phi under alpha·beta²·gamma² ~ 2 (each phi step ~doubles the FLOPs;
  the paper's B0 search gives alpha = 1.2, beta = 1.1, gamma = 1.15). Measured on a small
  plain conv net by doubling each dimension.

Run: dlprep demo depthwise-separable
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of one forward pass per sample, from the shapes each layer really sees."""
    total = 0

    def conv_hook(layer: nn.Conv2d, _inputs, out: torch.Tensor) -> None:
        nonlocal total
        k_h, k_w = layer.kernel_size
        per_output = (layer.in_channels // layer.groups) * k_h * k_w
        total += out[0].numel() * per_output  # out[0]: (C_out, H_out, W_out), one sample

    def linear_hook(layer: nn.Linear, _inputs, out: torch.Tensor) -> None:
        nonlocal total
        total += layer.in_features * layer.out_features

    handles = []
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            handles.append(layer.register_forward_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return total


def standard(c_in: int, c_out: int, k: int) -> nn.Module:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)


def separable(c_in: int, c_out: int, k: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, k, padding=k // 2, groups=c_in, bias=False),  # depthwise
        nn.Conv2d(c_in, c_out, 1, bias=False),  # pointwise: mixes the channels
    )


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape  # (N, C, H, W) -> (N, G, C/G, H, W) -> swap -> back
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def group_dependence(f, c: int, groups: int, device) -> torch.Tensor:
    """(G, G) matrix: does output group i depend on input group j? (gradient norms)"""
    x = torch.randn(1, c, 4, 4, device=device, requires_grad=True)
    y = f(x)  # (1, C, 4, 4)
    size = c // groups
    dep = torch.zeros(groups, groups)
    for i in range(groups):
        (grad,) = torch.autograd.grad(y[:, i * size : (i + 1) * size].sum(), x, retain_graph=True)
        for j in range(groups):
            dep[i, j] = grad[:, j * size : (j + 1) * size].norm().item()
    return dep


class PlainConvNet(nn.Module):
    """Stem 3×3 conv, `depth` 3×3 conv + ReLU layers of `width` channels, GAP, Linear."""

    def __init__(self, depth: int, width: int, classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, classes)
        return self.head(self.features(x).mean(dim=(2, 3)))


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    torch.manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. weights and MACs: standard vs depthwise-separable ---------------------------------
    configs = [(32, 64, 3), (128, 128, 3), (256, 512, 3), (128, 128, 5)]
    size = 28
    rows, counts = [], {}
    formula_ok = True
    for c_in, c_out, k in configs:
        std, sep = standard(c_in, c_out, k).to(device), separable(c_in, c_out, k).to(device)
        x = torch.randn(1, c_in, size, size, device=device)
        p_std, p_sep = n_params(std), n_params(sep)
        m_std, m_sep = count_macs(std, x), count_macs(sep, x)
        formula_ok &= p_std == k * k * c_in * c_out and p_sep == k * k * c_in + c_in * c_out
        formula_ok &= m_std == p_std * size * size and m_sep == p_sep * size * size
        predicted = 1 / (1 / c_out + 1 / k**2)
        counts[f"{c_in}->{c_out} k{k}"] = {
            "params_standard": p_std,
            "params_separable": p_sep,
            "macs_standard": m_std,
            "macs_separable": m_sep,
            "ratio": m_std / m_sep,
            "predicted_ratio": predicted,
        }
        rows.append(
            [
                f"{c_in}→{c_out}, {k}×{k}",
                f"{p_std:,}",
                f"{p_sep:,}",
                f"{m_std / 1e6:.1f}M",
                f"{m_sep / 1e6:.2f}M",
                f"{m_std / m_sep:.2f}x",
                f"{predicted:.2f}x",
            ]
        )
    result.tables.append(
        Table(
            f"Standard vs depthwise-separable convolution (no bias), {size}×{size} input",
            [
                "layer",
                "weights std",
                "weights sep",
                "MACs std",
                "MACs sep",
                "ratio",
                "1/(1/C_out + 1/k²)",
            ],
            rows,
        )
    )

    # ---- 2. the depthwise conv does not mix channels -----------------------------------------
    c = 8
    depthwise = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False).to(device)
    dep_dw = group_dependence(depthwise, c, c, device)  # (C, C): channel i on channel j
    off_diagonal = (dep_dw - torch.diag(torch.diag(dep_dw))).abs().max().item()
    diagonal_min = torch.diag(dep_dw).min().item()

    # ---- 3. time: MACs are not wall-clock --------------------------------------------------------
    c_t, size_t, batch_t = 128, ctx.pick(28, 56), 8
    std_t = standard(c_t, c_t, 3).to(device)
    sep_t = separable(c_t, c_t, 3).to(device)
    x_t = torch.randn(batch_t, c_t, size_t, size_t, device=device)
    repeats = ctx.pick(5, 20)

    def best_time(module: nn.Module) -> float:
        with torch.no_grad():
            module(x_t)  # warm-up
            times = []
            for _ in range(repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                module(x_t)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
        return min(times)

    t_std, t_sep = best_time(std_t), best_time(sep_t)
    mac_ratio = count_macs(std_t, x_t[:1]) / count_macs(sep_t, x_t[:1])
    speedup = t_std / t_sep

    # arithmetic intensity: MACs per tensor element read or written (input, weights, output),
    # one sample; a layer with few MACs per element is limited by memory, not arithmetic
    def intensity(layer: nn.Conv2d, c_in: int, c_out: int) -> float:
        x1 = torch.randn(1, c_in, size_t, size_t, device=device)
        moved = x1.numel() + layer.weight.numel() + c_out * size_t * size_t
        return count_macs(layer, x1) / moved

    intensities = {
        "standard 3×3": intensity(std_t, c_t, c_t),
        "depthwise 3×3": intensity(sep_t[0], c_t, c_t),
        "pointwise 1×1": intensity(sep_t[1], c_t, c_t),
    }
    result.tables.append(
        Table(
            f"{c_t}→{c_t} channels at {size_t}×{size_t}: MACs per element moved, and forward "
            f"time on {ctx.device} (batch {batch_t}, best of {repeats})",
            ["layer", "MACs per element moved", "time (ms)"],
            [
                ["standard 3×3", f"{intensities['standard 3×3']:.0f}", f"{1e3 * t_std:.2f}"],
                ["depthwise 3×3", f"{intensities['depthwise 3×3']:.1f}", ""],
                ["pointwise 1×1", f"{intensities['pointwise 1×1']:.0f}", ""],
                ["depthwise + pointwise", "", f"{1e3 * t_sep:.2f}"],
            ],
        )
    )

    # ---- 4. ShuffleNet: grouped 1×1 convs need a channel shuffle --------------------------------
    c_g, groups = 16, 4
    gconv1 = nn.Conv2d(c_g, c_g, 1, groups=groups, bias=False).to(device)
    gconv2 = nn.Conv2d(c_g, c_g, 1, groups=groups, bias=False).to(device)
    dep_plain = group_dependence(lambda x: gconv2(gconv1(x)), c_g, groups, device)
    dep_shuffle = group_dependence(
        lambda x: gconv2(channel_shuffle(gconv1(x), groups)), c_g, groups, device
    )
    plain_cross = (dep_plain - torch.diag(torch.diag(dep_plain))).abs().max().item()
    shuffle_min = dep_shuffle.min().item()

    # ---- 5. how FLOPs scale with depth, width and resolution -----------------------------------
    base = {"depth": 4, "width": 32, "resolution": 32}
    variants = {
        "base": base,
        "depth x2": {**base, "depth": 8},
        "width x2": {**base, "width": 64},
        "resolution x2": {**base, "resolution": 64},
    }
    macs = {}
    for name, v in variants.items():
        net = PlainConvNet(v["depth"], v["width"]).to(device)
        x = torch.randn(1, 3, v["resolution"], v["resolution"], device=device)
        macs[name] = count_macs(net, x)
    growth = {name: macs[name] / macs["base"] for name in variants}
    result.tables.append(
        Table(
            "MACs of a plain conv net (3×3 stem, 4 conv layers of 32 channels at 32×32, "
            "GAP, Linear) when one dimension doubles",
            ["variant", "MACs", "vs base"],
            [[name, f"{macs[name] / 1e6:.1f}M", f"{growth[name]:.2f}x"] for name in variants],
        )
    )

    # ---- metrics and claims ------------------------------------------------------------------
    result.metrics = {
        "counts": counts,
        "depthwise_cross_channel_gradient": off_diagonal,
        "time_standard_s": t_std,
        "time_separable_s": t_sep,
        "speedup": speedup,
        "macs_per_element_moved": intensities,
        "mac_ratio": mac_ratio,
        "grouped_cross_group_gradient_no_shuffle": plain_cross,
        "grouped_min_gradient_with_shuffle": shuffle_min,
        "macs_growth": growth,
    }
    result.claim(
        "A standard k×k conv has k²·C_in·C_out weights and MACs per output pixel; the "
        "depthwise-separable one k²·C_in + C_in·C_out: 1/(1/C_out + 1/k²) times fewer "
        "(7.9-8.8x for 3×3, 21x for 5×5 here).",
        formula_ok and all(abs(v["ratio"] - v["predicted_ratio"]) < 1e-9 for v in counts.values()),
        ", ".join(f"{name}: {v['ratio']:.2f}x" for name, v in counts.items()),
    )
    result.claim(
        "The depthwise convolution never mixes channels: output channel i has zero gradient "
        "with respect to every input channel j != i.",
        off_diagonal == 0 and diagonal_min > 0,
        f"largest cross-channel gradient {off_diagonal:.1e}, smallest own-channel "
        f"{diagonal_min:.2f}",
    )
    result.claim(
        "The depthwise layer does very little arithmetic per value it reads or writes (< 10 "
        "MACs per element vs > 50 for the standard conv), which makes it memory-bound on "
        "hardware built for dense matmuls: why FLOP counts overstate its speed-up (the timings "
        "are shown, not claimed).",
        intensities["depthwise 3×3"] < 10 and intensities["standard 3×3"] > 50,
        ", ".join(f"{k}: {v:.1f}" for k, v in intensities.items()),
    )
    result.claim(
        "Stacked grouped 1×1 convs keep the groups apart (output group i sees only input group "
        "i); a channel shuffle in between lets every output group see every input group "
        "(ShuffleNet).",
        plain_cross == 0 and shuffle_min > 0,
        f"without shuffle, largest cross-group gradient {plain_cross:.1e}; with shuffle, the "
        f"smallest group-to-group gradient {shuffle_min:.3f}",
    )
    result.claim(
        "FLOPs grow ~linearly with depth and ~quadratically with width and resolution: "
        "doubling depth gives ~2x, doubling width or resolution ~4x (stem and head aside).",
        1.7 < growth["depth x2"] <= 2.0
        and 3.5 < growth["width x2"] <= 4.0
        and 3.9 < growth["resolution x2"] <= 4.0,
        ", ".join(f"{name}: {growth[name]:.2f}x" for name in variants if name != "base"),
    )
    result.notes.append(
        "EfficientNet's constraint alpha·beta²·gamma² ~ 2 with the paper's alpha = 1.2, "
        f"beta = 1.1, gamma = 1.15 gives {1.2 * 1.1**2 * 1.15**2:.2f}: each step of the compound "
        "coefficient phi roughly doubles the FLOPs, split between depth, width and resolution."
    )
    return result
