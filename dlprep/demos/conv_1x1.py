"""1×1 convolution = a Linear layer at every pixel; bottlenecks cut a 3×3 layer's weights and FLOPs.

What it shows:

- A 1×1 convolution with C_in inputs and C_out outputs is the same computation as
  nn.Linear(C_in, C_out) applied to the channel vector at every pixel, with the same weights
  (measured: identical outputs after copying the weights, to float rounding in float32 and to
  1e-12 in float64). It mixes channels, never pixels: changing one input pixel changes only the
  output at that pixel. Lin et al. 2013 ("Network in Network", arXiv 1312.4400) introduced it
  as a per-pixel MLP.
- Its use as a cheap channel reducer. ResNet-50's bottleneck block (He et al. 2016, arXiv
  1512.03385, Sec. 4.1) maps 256 channels to 64 with a 1×1, runs the 3×3 at 64 and maps back
  to 256 with a 1×1: same input and output shapes as a 3×3 at 256 channels, ~8.5x fewer
  weights and multiply-adds (counted from the shapes the layers actually see, by hooks).
  GoogLeNet (Szegedy et al. 2015, arXiv 1409.4842) puts 1×1 "reductions" before its 3×3 and
  5×5 branches for the same reason; its inception (3a) 5×5 branch is counted too.
- Forward-pass timings on this device are measured, not assumed. Fewer multiply-adds is not
  the same as proportionally faster: on the 2-core CPU this was written on the bottleneck ran
  4-5x faster in most runs for 8.5x fewer multiply-adds (three small convolutions use the
  hardware less efficiently than one big one). On a GPU at these sizes all of them may be
  bound by kernel launches, so the timing claim is made on the CPU only.
- On an NVIDIA GPU (Ampere or newer), cuDNN runs float32 convolutions in TF32 by default
  (10-bit mantissa) while the Linear's matmul stays in float32, so there the float32
  comparison allows differences up to 5e-3 of the output scale;
  in float64 they agree to 1e-12 on every device.

Run: dlprep demo conv-1x1
"""

from __future__ import annotations

import time

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of every Conv2d per image, from the output shapes it actually produces:
    each output element costs (C_in / groups) · k_h · k_w multiply-adds."""
    total = 0

    def hook(module: nn.Conv2d, inputs, output: torch.Tensor) -> None:
        nonlocal total
        k_h, k_w = module.kernel_size
        total += output[0].numel() * (module.in_channels // module.groups) * k_h * k_w

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x[:1])
    for handle in handles:
        handle.remove()
    return total


def best_time(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Fastest of `repeats` forward passes, in milliseconds (the least disturbed by other load)."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    with torch.no_grad():
        for _ in range(2):  # warm-up: the first calls pick and prepare the conv algorithms
            model(x)
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            model(x)
            sync()
            times.append(1000 * (time.perf_counter() - start))
    return min(times)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)

    # ---- 1. a 1×1 conv is a Linear layer applied at every pixel -------------------------------
    diffs, scales = {}, {}
    for dtype in (torch.float32, torch.float64):
        conv = nn.Conv2d(64, 32, kernel_size=1).to(device, dtype)
        linear = nn.Linear(64, 32).to(device, dtype)
        with torch.no_grad():  # the same weights: (32, 64, 1, 1) -> (32, 64)
            linear.weight.copy_(conv.weight.view(32, 64))
            linear.bias.copy_(conv.bias)
            x = torch.randn(4, 64, 10, 12, generator=g, dtype=dtype).to(device)  # (B, C, H, W)
            by_conv = conv(x)  # (4, 32, 10, 12)
            # channels last: (B, H, W, C), Linear on the last dim, back to (B, C, H, W)
            by_linear = linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            name = str(dtype).removeprefix("torch.")
            diffs[name] = (by_conv - by_linear).abs().max().item()
            scales[name] = by_conv.abs().max().item()
    # On recent NVIDIA GPUs cuDNN runs float32 convolutions in TF32 (10-bit mantissa) by
    # default while the Linear's matmul stays in full float32: allow TF32-sized differences.
    tol32 = 1e-6 if ctx.device == "cpu" else 5e-3

    # it mixes channels, never pixels: poke one input pixel, see which outputs move
    with torch.no_grad():
        poked = x.clone()
        poked[:, :, 3, 5] += 1.0
        moved = (conv(poked) - conv(x)).abs().amax(dim=(0, 1))  # (H, W)
        moved_pixels = (moved > 0).nonzero().tolist()

    # ---- 2. bottleneck vs plain 3×3 at 256 channels; GoogLeNet's 5×5 reduction ----------------
    def conv_bn_relu(c_in: int, c_out: int, k: int) -> list[nn.Module]:
        # no bias: BatchNorm follows (as in ResNet), so weights are all in the convolutions
        return [
            nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]

    designs = {
        "3×3, 256→256": nn.Sequential(*conv_bn_relu(256, 256, 3)),
        "bottleneck 1×1 256→64, 3×3 64→64, 1×1 64→256": nn.Sequential(
            *conv_bn_relu(256, 64, 1), *conv_bn_relu(64, 64, 3), *conv_bn_relu(64, 256, 1)
        ),
        "5×5, 192→32 (inception 3a, no reduction)": nn.Sequential(*conv_bn_relu(192, 32, 5)),
        "1×1 192→16, then 5×5 16→32 (inception 3a)": nn.Sequential(
            *conv_bn_relu(192, 16, 1), *conv_bn_relu(16, 32, 5)
        ),
    }
    # ResNet-50 runs this 256-64-256 block on 56×56 maps, GoogLeNet's 3a on 28×28; smaller maps
    # keep the demo fast, and the weight and multiply-add ratios do not depend on the size
    side = ctx.pick(14, 28)
    batch = ctx.pick(4, 16)
    inputs = {
        256: torch.randn(batch, 256, side, side, generator=g).to(device),
        192: torch.randn(batch, 192, side, side, generator=g).to(device),
    }
    rows, stats = [], {}
    for name, model in designs.items():
        model = model.to(device).eval()
        x = inputs[model[0].in_channels]
        with torch.no_grad():
            out_shape = list(model(x).shape)
        stats[name] = {
            "params": sum(n_params(m) for m in model if isinstance(m, nn.Conv2d)),
            "macs_per_image": count_macs(model, x),
            "ms_per_batch": best_time(model, x, ctx.pick(5, 20)),
            "output_shape": out_shape,
        }
        s = stats[name]
        rows.append(
            [
                name,
                f"{s['params']:,}",
                f"{s['macs_per_image'] / 1e6:.1f}M",
                f"{s['ms_per_batch']:.2f}",
                "×".join(map(str, out_shape)),
            ]
        )
    plain, bottle = stats["3×3, 256→256"], stats["bottleneck 1×1 256→64, 3×3 64→64, 1×1 64→256"]
    direct, reduced = (
        stats["5×5, 192→32 (inception 3a, no reduction)"],
        stats["1×1 192→16, then 5×5 16→32 (inception 3a)"],
    )
    param_ratio = plain["params"] / bottle["params"]
    mac_ratio = plain["macs_per_image"] / bottle["macs_per_image"]
    time_ratio = plain["ms_per_batch"] / bottle["ms_per_batch"]
    inception_ratio = direct["macs_per_image"] / reduced["macs_per_image"]

    result = DemoResult(
        metrics={
            "max_diff_conv1x1_vs_linear": diffs,
            "output_scale": scales,
            "pixels_changed_by_poking_one": moved_pixels,
            "designs": stats,
            "bottleneck_param_ratio": param_ratio,
            "bottleneck_mac_ratio": mac_ratio,
            "bottleneck_time_ratio": time_ratio,
            "inception_5x5_mac_ratio": inception_ratio,
            "spatial_size": side,
            "batch": batch,
        },
        tables=[
            Table(
                "1×1 conv vs Linear on the channels of every pixel (same weights)",
                ["dtype", "max |conv − linear|"],
                [[dtype, f"{d:.1e}"] for dtype, d in diffs.items()],
            ),
            Table(
                f"Conv weights, multiply-adds per {side}×{side} image (counted by hooks), "
                f"fastest of several forward passes of a batch of {batch} on {ctx.device}",
                ["design", "weights", "multiply-adds", "ms / batch", "output"],
                rows,
            ),
        ],
        notes=[
            f"On {ctx.device} the bottleneck's forward pass is {time_ratio:.1f}x faster for "
            f"{mac_ratio:.1f}x fewer multiply-adds"
            + (
                ": less than the count predicts, three small convolutions use the hardware "
                "less efficiently than one big one (and on a GPU at this size kernel launches "
                "can dominate)."
                if time_ratio < mac_ratio
                else ": at least what the count predicts here (timings vary from run to run)."
            ),
            "Weights counted here exclude BatchNorm's 2 per channel (ResNet's convolutions have "
            "no bias because BN follows).",
        ],
    )
    result.claim(
        "A 1×1 convolution equals nn.Linear applied to the channels of every pixel, with the "
        f"same weights (float32 to {tol32:g} of the output scale, float64 to 1e-12).",
        diffs["float32"] < tol32 * max(1.0, scales["float32"]) and diffs["float64"] < 1e-12,
        f"max |diff|: float32 {diffs['float32']:.1e}, float64 {diffs['float64']:.1e} "
        f"(outputs up to {scales['float32']:.2g})",
    )
    result.claim(
        "It mixes channels, never pixels: changing one input pixel changes only that output pixel.",
        moved_pixels == [[3, 5]],
        f"output pixels that changed: {moved_pixels}",
    )
    result.claim(
        "The bottleneck (1×1 256→64, 3×3 at 64, 1×1 64→256) gives the same output shape as a "
        "3×3 at 256 channels with ~8.5x fewer weights and multiply-adds.",
        bottle["output_shape"] == plain["output_shape"] and param_ratio > 8 and mac_ratio > 8,
        f"weights {plain['params']:,} vs {bottle['params']:,} ({param_ratio:.2f}x); "
        f"multiply-adds {mac_ratio:.2f}x fewer; shapes {plain['output_shape']}",
    )
    result.claim(
        "GoogLeNet's 1×1 reduction (192→16) before its 5×5 branch cuts that branch's "
        "multiply-adds about 10x, same output shape.",
        direct["output_shape"] == reduced["output_shape"] and inception_ratio > 5,
        f"{direct['macs_per_image'] / 1e6:.1f}M vs {reduced['macs_per_image'] / 1e6:.1f}M "
        f"({inception_ratio:.1f}x)",
    )
    if ctx.device == "cpu":  # on a GPU at this size, launch overhead can swamp the difference
        result.claim(
            "On the CPU the saving shows in time too: the bottleneck's forward pass is more "
            "than 2x faster.",
            time_ratio > 2,
            f"{plain['ms_per_batch']:.2f} ms vs {bottle['ms_per_batch']:.2f} ms "
            f"({time_ratio:.1f}x)",
        )
    return result
