"""Max vs average vs global average pooling: no weights, local shift invariance, any input size.

What it shows:

- Pooling layers have no parameters: max pooling takes the largest value in each window,
  average pooling the mean (checked against a reshape by hand), global average pooling (GAP)
  the mean over the whole map.
- Local invariance, measured: a map with one strong activation is shifted by one pixel. Without
  pooling the map always changes; after 2×2 max pooling it is unchanged only when the
  activation stays inside its window, about half the time (3/4 for 4×4 windows). A 2-pixel
  shift always moves it to the next 2×2 window. Pooling gives *partial, local* invariance, not
  translation invariance.
- What really happens in a network (Azulay & Weiss, JMLR 2019, "Why do deep convolutional
  networks generalize so poorly to small image transformations?", arXiv 1805.12177): the
  subsampling in strided pooling breaks the shift equivariance that convolutions have. A conv
  net with circular padding and GAP and no subsampling is *exactly* invariant to circular
  shifts; add three 2×2 max pools and it is invariant only to shifts by multiples of 8 (the
  total stride), while a 1-pixel shift moves its (random-weight) features about half as far
  as replacing the image by another one. The exact invariance a CNN has comes from GAP at
  the end, and only for shifts by multiples of the total stride; pooling's windows add a local
  tolerance. Azulay & Weiss find that antialiasing and more data augmentation are at best
  partial fixes.
- GAP makes the classifier independent of the input size (the same model runs on 32×32 and
  48×48 images; a Flatten + Linear head refuses the second) and replaces the big fully
  connected layers (Lin et al. 2013, "Network in Network", arXiv 1312.4400): VGG-16's three FC
  layers hold ~124M of its ~138M weights, a GAP + Linear(512, 1000) head 0.5M (counted on the
  meta device, without allocating them).

Run: dlprep demo pooling
"""

from __future__ import annotations

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

SIZE = 16  # the single-activation maps are SIZE×SIZE


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def spike_maps(n: int, g: torch.Generator, device: torch.device, background: bool):
    """n maps of shape (1, SIZE, SIZE), each with one activation of 5 at a random position;
    with `background`, plus a weak ReLU'd noise everywhere (what a real feature map looks like)."""
    maps = torch.zeros(n, 1, SIZE, SIZE)
    if background:
        maps = torch.relu(0.3 * torch.randn(n, 1, SIZE, SIZE, generator=g))
    rows = torch.randint(0, SIZE, (n,), generator=g)
    cols = torch.randint(0, SIZE, (n,), generator=g)
    maps[torch.arange(n), 0, rows, cols] = 5.0
    return maps.to(device)  # (n, 1, SIZE, SIZE)


def random_shifts(maps: torch.Tensor, step: int, g: torch.Generator) -> torch.Tensor:
    """Shift each map by `step` pixels up, down, left or right (circularly: nothing falls off)."""
    out = torch.empty_like(maps)
    directions = torch.randint(0, 4, (len(maps),), generator=g).tolist()
    for i, direction in enumerate(directions):
        shift = step if direction % 2 == 0 else -step
        out[i] = torch.roll(maps[i], shifts=shift, dims=1 + direction // 2)  # H or W
    return out


def unchanged_fraction(layer: nn.Module, maps: torch.Tensor, shifted: torch.Tensor) -> float:
    """Share of maps whose output is the same after the shift (to float rounding: a sum in
    another order can differ in the last bit)."""
    same = ((layer(maps) - layer(shifted)).abs() < 1e-5).flatten(1).all(dim=1)
    return same.float().mean().item()


class SmallCNN(nn.Module):
    """Three circular-padded 3×3 convs + ReLU, optional 2×2 max pool after each, then GAP."""

    def __init__(self, pool: bool):
        super().__init__()
        layers: list[nn.Module] = []
        channels = [3, 16, 32, 64]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="circular"), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(2))  # stride 2: subsampling
        self.features = nn.Sequential(*layers)
        self.gap = nn.AdaptiveAvgPool2d(1)  # (B, 64, h, w) -> (B, 64, 1, 1) for any h, w
        self.classifier = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 10)
        return self.classifier(self.gap(self.features(x)).flatten(1))


def features(model: SmallCNN, x: torch.Tensor) -> torch.Tensor:
    return model.gap(model.features(x)).flatten(1)  # (B, 64): what the classifier sees


def shift_change(model: SmallCNN, x: torch.Tensor, shift: int) -> float:
    """How far a shift right by `shift` pixels moves an image's GAP features, as a fraction of
    the typical distance between the features of two different images."""
    f = features(model, x)
    moved = features(model, torch.roll(x, shifts=shift, dims=3))
    between = (f - torch.roll(f, shifts=1, dims=0)).norm(dim=1).mean()  # image i vs i+1
    return ((moved - f).norm(dim=1).mean() / between).item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)

    # ---- 1. no parameters; what each computes, by hand ----------------------------------------
    maxpool, avgpool, gap = nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1)
    x = torch.randn(4, 8, 12, 12, generator=g).to(device)  # (B, C, H, W)
    windows = x.reshape(4, 8, 6, 2, 6, 2)  # (B, C, H/2, 2, W/2, 2): the 2×2 windows
    by_hand = {
        "MaxPool2d(2)": (maxpool(x) - windows.amax(dim=(3, 5))).abs().max().item(),
        "AvgPool2d(2)": (avgpool(x) - windows.mean(dim=(3, 5))).abs().max().item(),
        "AdaptiveAvgPool2d(1)": (gap(x) - x.mean(dim=(2, 3), keepdim=True)).abs().max().item(),
    }
    params = {
        name: n_params(layer) for name, layer in zip(by_hand, (maxpool, avgpool, gap), strict=True)
    }

    # ---- 2. local invariance: one strong activation, shifted by one pixel ---------------------
    n = ctx.pick(400, 4000)
    sparse = spike_maps(n, g, device, background=False)
    one = random_shifts(sparse, 1, g)
    two = random_shifts(sparse, 2, g)
    layers = {
        "no pooling": nn.Identity(),
        "MaxPool2d(2)": nn.MaxPool2d(2),
        "AvgPool2d(2)": nn.AvgPool2d(2),
        "MaxPool2d(4)": nn.MaxPool2d(4),
        "global average pool": nn.AdaptiveAvgPool2d(1),
    }
    shift1 = {name: unchanged_fraction(layer, sparse, one) for name, layer in layers.items()}
    shift2 = {name: unchanged_fraction(layer, sparse, two) for name, layer in layers.items()}
    noisy = spike_maps(n, g, device, background=True)
    noisy_one = random_shifts(noisy, 1, g)
    noisy1 = {name: unchanged_fraction(layer, noisy, noisy_one) for name, layer in layers.items()}
    # with a background, the spike's own pooled cell can still survive: same maximum, same cell
    before, after = maxpool(noisy).flatten(1), maxpool(noisy_one).flatten(1)  # (n, 64)
    same_value = before.amax(dim=1) == after.amax(dim=1)
    same_cell = before.argmax(dim=1) == after.argmax(dim=1)
    spike_cell_same = (same_value & same_cell).float().mean().item()

    # ---- 3. in a network: subsampling breaks shift equivariance (Azulay & Weiss) -------------
    # float64: on a GPU, float32 convolutions run in TF32 and could blur "exactly invariant"
    f64 = torch.float64
    images = torch.randn(ctx.pick(16, 64), 3, 32, 32, generator=g, dtype=f64).to(device)
    # blur the noise a little (3×3 box filter): neighbouring pixels correlate, as in images
    images = nn.functional.avg_pool2d(images, 3, stride=1, padding=1)
    no_pool_net = SmallCNN(pool=False).to(device, f64)
    pool_net = SmallCNN(pool=True).to(device, f64)
    with torch.no_grad():
        net_change = {
            (name, shift): shift_change(net, images, shift)
            for name, net in (("conv + GAP", no_pool_net), ("conv + 3 max pools + GAP", pool_net))
            for shift in (1, 3, 8, 16)
        }

    # ---- 4. GAP: any input size, and far fewer weights than a Flatten + Linear head -----------
    with torch.no_grad():
        out32 = pool_net(torch.randn(2, 3, 32, 32, generator=g, dtype=f64).to(device))
        out48 = pool_net(torch.randn(2, 3, 48, 48, generator=g, dtype=f64).to(device))
    flatten_head = nn.Sequential(pool_net.features, nn.Flatten(), nn.Linear(64 * 4 * 4, 10))
    flatten_head = flatten_head.to(device, f64)
    with torch.no_grad():  # built for 32×32 inputs (a 64×4×4 final map), where it works
        x32 = torch.randn(2, 3, 32, 32, generator=g, dtype=f64).to(device)
        flatten32 = list(flatten_head(x32).shape)
    try:
        with torch.no_grad():
            flatten_head(torch.randn(2, 3, 48, 48, generator=g, dtype=f64).to(device))
        flatten_error = ""
    except RuntimeError as error:
        flatten_error = str(error).splitlines()[0]
    # VGG-16's classifier on its 512×7×7 final map vs a GAP head (NiN / ResNet style); the meta
    # device gives the shapes without allocating 124M floats
    vgg_fc = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096, device="meta"),
        nn.Linear(4096, 4096, device="meta"),
        nn.Linear(4096, 1000, device="meta"),
    )
    gap_head = nn.Linear(512, 1000, device="meta")
    vgg_fc_params, gap_head_params = n_params(vgg_fc), n_params(gap_head)

    result = DemoResult(
        metrics={
            "params": params,
            "max_diff_vs_hand": by_hand,
            "unchanged_after_1px_shift": shift1,
            "unchanged_after_2px_shift": shift2,
            "unchanged_after_1px_shift_with_background": noisy1,
            "maxpool2_spike_cell_unchanged_with_background": spike_cell_same,
            "cnn_feature_change_over_between_image_distance": {
                f"{k[0]}, shift {k[1]}": v for k, v in net_change.items()
            },
            "gap_output_shapes": [list(out32.shape), list(out48.shape)],
            "flatten_head_error_on_48x48": flatten_error,
            "vgg16_fc_params": vgg_fc_params,
            "gap_head_params": gap_head_params,
        },
        tables=[
            Table(
                "Pooling layers: parameters, and the same result by hand (reshape into windows)",
                ["layer", "parameters", "max |torch − hand|"],
                [[name, params[name], f"{by_hand[name]:.1e}"] for name in by_hand],
            ),
            Table(
                f"Share of {n} maps (one activation of 5 on {SIZE}×{SIZE}) whose pooled output "
                "is identical after a shift",
                ["layer", "1-pixel shift", "2-pixel shift", "1 pixel, with weak background"],
                [
                    [name, f"{shift1[name]:.1%}", f"{shift2[name]:.1%}", f"{noisy1[name]:.1%}"]
                    for name in layers
                ],
            ),
            Table(
                "Small random CNN (circular padding, float64): how far a shift moves an image's "
                "GAP features, as a fraction of the distance between two different images",
                ["net", "shift 1", "shift 3", "shift 8", "shift 16"],
                [
                    [name, *(f"{net_change[(name, s)]:.1e}" for s in (1, 3, 8, 16))]
                    for name in ("conv + GAP", "conv + 3 max pools + GAP")
                ],
            ),
            Table(
                "Classifier heads: weights",
                ["head", "parameters"],
                [
                    ["VGG-16 FC layers on 512×7×7 (25088→4096→4096→1000)", f"{vgg_fc_params:,}"],
                    ["GAP + Linear(512, 1000)", f"{gap_head_params:,}"],
                ],
            ),
        ],
        notes=[
            "With a weak background (ReLU'd noise, as in real feature maps) almost no pooled "
            f"map is identical after a 1-pixel shift ({noisy1['MaxPool2d(2)']:.1%} for 2×2 max "
            "pooling): the background moves between windows too. The strong activation's own "
            f"cell survives {spike_cell_same:.0%} of the time (without background: "
            f"{shift1['MaxPool2d(2)']:.0%}).",
            "Global average pooling of a map is invariant to circular shifts by construction; "
            "what breaks a CNN's invariance is the subsampling (strided pooling/convolution) "
            "before it, which ignores the sampling theorem. Fixes tried: antialiasing (Zhang, "
            "ICML 2019, 'Making Convolutional Networks Shift-Invariant Again', blurs before "
            "subsampling) and more augmentation; Azulay & Weiss find both only partial.",
        ],
    )
    result.claim(
        "Max, average and global average pooling have no parameters; they are a max or mean "
        "over each window (matches a reshape by hand).",
        all(v == 0 for v in params.values()) and max(by_hand.values()) < 1e-6,
        f"parameters {params}; max |diff| {max(by_hand.values()):.1e}",
    )
    result.claim(
        "Without pooling a 1-pixel shift always changes the map; after 2×2 max pooling the "
        "output is unchanged about half the time (when the activation stays in its window), "
        "after 4×4 about 3/4 of the time: partial, local invariance.",
        shift1["no pooling"] == 0
        and 0.4 < shift1["MaxPool2d(2)"] < 0.6
        and 0.65 < shift1["MaxPool2d(4)"] < 0.85,
        f"unchanged: none {shift1['no pooling']:.1%}, 2×2 {shift1['MaxPool2d(2)']:.1%}, "
        f"4×4 {shift1['MaxPool2d(4)']:.1%}",
    )
    result.claim(
        "A 2-pixel shift always moves the activation to another 2×2 window: no invariance at "
        "the window's own size.",
        shift2["MaxPool2d(2)"] == 0,
        f"unchanged after 2 pixels: {shift2['MaxPool2d(2)']:.1%}",
    )
    conv_gap = max(net_change[("conv + GAP", s)] for s in (1, 3, 8, 16))
    pooled_1 = net_change[("conv + 3 max pools + GAP", 1)]
    pooled_8 = max(net_change[("conv + 3 max pools + GAP", s)] for s in (8, 16))
    result.claim(
        "A CNN with circular padding and GAP and no subsampling is shift invariant (to float "
        "rounding); with three stride-2 max pools it stays invariant only to shifts by "
        "multiples of 8, and a 1-pixel shift moves its features a sizeable fraction of the way "
        "to another image's (Azulay & Weiss 2019).",
        conv_gap < 1e-6 and pooled_8 < 1e-6 and pooled_1 > 0.1,
        f"feature change / distance between images: conv+GAP ≤ {conv_gap:.1e}; pooled net "
        f"shift 1 {pooled_1:.2f}, shifts 8/16 ≤ {pooled_8:.1e}",
    )
    result.claim(
        "With global average pooling the same model accepts 32×32 and 48×48 inputs; a "
        "Flatten + Linear head refuses the larger one.",
        list(out32.shape) == list(out48.shape) == [2, 10]
        and flatten32 == [2, 10]
        and bool(flatten_error),
        f"GAP model outputs {list(out32.shape)} and {list(out48.shape)}; Flatten head on 32×32 "
        f"{flatten32}, on 48×48: {flatten_error!r}",
    )
    result.claim(
        "A GAP head replaces big FC layers: VGG-16's FC layers have >100x the weights of "
        "GAP + Linear(512, 1000).",
        vgg_fc_params > 100 * gap_head_params,
        f"{vgg_fc_params:,} vs {gap_head_params:,} ({vgg_fc_params / gap_head_params:.0f}x)",
    )
    return result
