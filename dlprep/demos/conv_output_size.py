"""Conv output size formula vs nn.Conv2d (dilation, padding='same'); receptive field of 3×3 stacks.

What it shows:

- The output size of a convolution along one axis is
  floor((n + 2p − d·(k − 1) − 1) / s) + 1 for input size n, padding p, kernel k, stride s and
  dilation d (the formula in the torch.nn.Conv2d docs). A dilated kernel covers d·(k − 1) + 1
  input pixels, so dilation enters only through that "effective kernel". The demo checks the
  formula against nn.Conv2d on many random configurations, with different settings for
  height and width, and checks that Conv2d refuses a kernel larger than the padded input.
- padding='same' (stride 1 only; a strided conv refuses it) keeps the size for any kernel and
  dilation. For an even effective kernel the total padding d(k − 1) is odd and PyTorch puts
  the extra pixel on the right/bottom (measured).
- A transposed convolution (ConvTranspose2d) with the same kernel, stride and padding maps
  the conv's output size m back to (m − 1)s − 2p + k + output_padding, output_padding choosing
  among the input sizes the floor merged. With the same weights it is the conv's adjoint:
  <conv(x), y> = <x, convT(y)>, which is why it is the conv's backward pass, and it is not an
  inverse of the conv's values ("deconvolution" is a misnomer).
- The receptive field of a stack, measured as the set of input pixels with a non-zero gradient
  of one output pixel: two 3×3 layers see 5×5, three see 7×7; in general each layer adds
  (k − 1)·d·(product of the strides below it). VGG's argument (Simonyan & Zisserman 2015,
  arXiv 1409.1556, Sec. 2.3): three 3×3 layers see as far as one 7×7 with 27C² instead of 49C²
  weights (C channels in and out, no bias), and put two more non-linearities in between.

What really happens beyond the formula: the receptive field is not uniform. The number of paths
from an input pixel to the output is largest at the centre, so the gradient (the "effective
receptive field", Luo et al. 2016, arXiv 1701.04128) is concentrated there: with all-ones 3×3
kernels the centre of a 3-layer stack weighs 49 times a corner.

Run: dlprep demo conv-output-size
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False


def formula(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def receptive_field(layers: list[nn.Conv2d], size: int, device: torch.device):
    """Side of the square of input pixels that affect the centre output pixel, and the map.

    float64, and "affects" = gradient above 1e-9 of the largest: GPU convolution algorithms
    (FFT, Winograd) can leave round-off where the exact gradient is 0."""
    x = torch.randn(1, 1, size, size, device=device, dtype=torch.float64, requires_grad=True)
    h = x  # (1, 1, S, S)
    for layer in layers:
        h = layer.to(device, torch.float64)(h)
    centre = h.shape[-1] // 2
    h[0, 0, centre, centre].backward()  # d(one output pixel) / d(every input pixel)
    grad = x.grad[0, 0]  # (S, S)
    seen = grad.abs() > 1e-9 * grad.abs().max()
    rows = seen.any(dim=1).nonzero().flatten()
    cols = seen.any(dim=0).nonzero().flatten()
    height = (rows.max() - rows.min() + 1).item()
    width = (cols.max() - cols.min() + 1).item()
    return height, width, grad


def conv(k: int, s: int = 1, d: int = 1, c: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c, c, k, stride=s, dilation=d, padding=0, bias=False)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)

    def rand(low: int, high: int) -> int:  # integer in [low, high]
        return int(torch.randint(low, high + 1, (1,), generator=g))

    # ---- 1. the formula vs nn.Conv2d on random configurations ---------------------------------
    trials = ctx.pick(150, 1000)
    checked, mismatches, refused_ok, refused_wrong, rows = 0, 0, 0, 0, []
    with torch.no_grad():
        while checked < trials:
            # one (n, k, s, p, d) per axis: height and width get different settings
            axes = [(rand(1, 40), rand(1, 7), rand(1, 4), rand(0, 3), rand(1, 3)) for _ in "hw"]
            layer = nn.Conv2d(
                1,
                1,
                kernel_size=(axes[0][1], axes[1][1]),
                stride=(axes[0][2], axes[1][2]),
                padding=(axes[0][3], axes[1][3]),
                dilation=(axes[0][4], axes[1][4]),
            ).to(device)
            x = torch.zeros(1, 1, axes[0][0], axes[1][0], device=device)  # (1, 1, H, W)
            expected = [formula(*a) for a in axes]
            fits = all(n + 2 * p >= d * (k - 1) + 1 for n, k, s, p, d in axes)
            try:
                out = tuple(layer(x).shape[-2:])
            except RuntimeError:  # "Kernel size can't be greater than actual input size"
                refused_ok += not fits
                refused_wrong += fits
                continue
            if not fits:
                refused_wrong += 1
                continue
            checked += 1
            mismatches += out != tuple(expected)
            if len(rows) < 6:
                rows.append([*(f"{n},{k},{s},{p},{d}" for n, k, s, p, d in axes), str(out)])

    # ---- 2. padding='same' keeps the size at stride 1 -----------------------------------------
    same_cases, same_ok = 0, 0
    with torch.no_grad(), warnings.catch_warnings():
        # PyTorch warns that an even kernel needs an extra (asymmetric) padded copy
        warnings.simplefilter("ignore", UserWarning)
        for k in range(1, 8):
            for d in (1, 2, 3):
                n = rand(k * d, 40)
                layer = nn.Conv2d(1, 1, k, dilation=d, padding="same").to(device)
                out = layer(torch.zeros(1, 1, n, n + 3, device=device))
                same_cases += 1
                same_ok += tuple(out.shape[-2:]) == (n, n + 3)
        try:
            nn.Conv2d(1, 1, 3, stride=2, padding="same")
            strided_same_error = ""
        except ValueError as error:
            strided_same_error = str(error)
        # even kernel, k=4: total padding 3; which side gets 2? (float64: no TF32 on a GPU)
        layer = nn.Conv2d(1, 1, 4, padding="same", bias=False).to(device, torch.float64)
        x = torch.randn(1, 1, 9, 9, generator=g, dtype=torch.float64).to(device)
        out = layer(x)
        pad = nn.functional.pad
        extra_right = (out - nn.functional.conv2d(pad(x, (1, 2, 1, 2)), layer.weight)).abs().max()
        extra_left = (out - nn.functional.conv2d(pad(x, (2, 1, 2, 1)), layer.weight)).abs().max()

    # ---- 3. receptive fields, measured by the gradient -----------------------------------------
    stacks = {  # name: (layers, formula 1 + sum (k-1)·d·prod(strides below))
        "one 3×3": ([conv(3)], 3),
        "two 3×3": ([conv(3), conv(3)], 5),
        "three 3×3": ([conv(3), conv(3), conv(3)], 7),
        "one 5×5": ([conv(5)], 5),
        "one 7×7": ([conv(7)], 7),
        "3×3 stride 2, then 3×3": ([conv(3, s=2), conv(3)], 1 + 2 + 2 * 2),
        "3×3 with dilation 1, 2, 4": ([conv(3, d=1), conv(3, d=2), conv(3, d=4)], 1 + 2 + 4 + 8),
    }
    rf_rows, rf_ok = [], True
    measured = {}
    for name, (layers, expected) in stacks.items():
        h, w, _ = receptive_field(layers, 33, device)
        measured[name] = h
        rf_ok &= h == w == expected
        rf_rows.append([name, f"{h}×{w}", expected])

    # ---- 4. the transposed convolution: the adjoint, and the inverse shape map ----------------
    # ConvTranspose2d with the conv's kernel, stride and padding maps the conv's output size m
    # back to (m − 1)s − 2p + k (+ output_padding); the floor in the conv merges up to s input
    # sizes into one m, and output_padding = (n + 2p − k) mod s picks n among them. Its
    # weights are the conv's, and as a linear map it is the conv's transpose (adjoint).
    transpose_trials = ctx.pick(40, 200)
    shape_ok, adjoint_gap = 0, 0.0
    for _ in range(transpose_trials):
        n, k, s = rand(6, 30), rand(1, 5), rand(1, 3)
        p = rand(0, (k - 1) // 2)  # n >= 6 > k: the kernel always fits
        m = formula(n, k, s, p, 1)
        op = (n + 2 * p - k) % s
        down = nn.Conv2d(1, 1, k, stride=s, padding=p, bias=False).to(device, torch.float64)
        up = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op, bias=False)
        up = up.to(device, torch.float64)
        with torch.no_grad():
            up.weight.copy_(down.weight)  # the same (1, 1, k, k) kernel
            x = torch.randn(1, 1, n, n, generator=g, dtype=torch.float64).to(device)
            y = torch.randn(1, 1, m, m, generator=g, dtype=torch.float64).to(device)
            back = up(y)
            shape_ok += back.shape[-1] == n == (m - 1) * s - 2 * p + k + op
            # <conv(x), y> = <x, convT(y)>: the transpose in the linear-algebra sense
            lhs, rhs = (down(x) * y).sum().item(), (x * back).sum().item()
            adjoint_gap = max(adjoint_gap, abs(lhs - rhs) / max(abs(lhs), 1e-12))

    # parameters, C channels in and out, no bias (as VGG counts them)
    C = 64
    params = {
        "two 3×3": sum(
            p.numel() for layer in (conv(3, c=C), conv(3, c=C)) for p in layer.parameters()
        ),
        "one 5×5": sum(p.numel() for p in conv(5, c=C).parameters()),
        "three 3×3": sum(
            p.numel()
            for layer in (conv(3, c=C), conv(3, c=C), conv(3, c=C))
            for p in layer.parameters()
        ),
        "one 7×7": sum(p.numel() for p in conv(7, c=C).parameters()),
    }

    # the effective receptive field: all-ones kernels count the paths to each input pixel
    ones = [conv(3) for _ in range(3)]
    for layer in ones:
        nn.init.ones_(layer.weight)
    _, _, grad = receptive_field(ones, 9, device)  # (9, 9); the 7×7 field sits at 1..7
    centre_over_corner = (grad[4, 4] / grad[1, 1]).item()
    edge = grad[1, 1:8].tolist()  # the field's top row: 1, 3, 6, 7, 6, 3, 1 paths

    result = DemoResult(
        metrics={
            "configurations_checked": checked,
            "formula_mismatches": mismatches,
            "refused_when_kernel_larger_than_padded_input": refused_ok,
            "refusals_not_predicted": refused_wrong,
            "same_padding_cases_kept_size": f"{same_ok}/{same_cases}",
            "strided_same_error": strided_same_error,
            "even_kernel_same_extra_pad_right_diff": extra_right.item(),
            "even_kernel_same_extra_pad_left_diff": extra_left.item(),
            "receptive_field": measured,
            "params_C64": params,
            "centre_over_corner_gradient_three_3x3_ones": centre_over_corner,
            "top_row_paths": edge,
            "transposed_conv_shape_matches": f"{shape_ok}/{transpose_trials}",
            "transposed_conv_adjoint_max_relative_gap": adjoint_gap,
        },
        tables=[
            Table(
                f"Formula vs nn.Conv2d: first {len(rows)} of {checked} random configurations",
                ["height n,k,s,p,d", "width n,k,s,p,d", "Conv2d output (H, W)"],
                rows,
            ),
            Table(
                "Receptive field of the centre output pixel, measured by its gradient",
                ["stack", "measured", "formula"],
                rf_rows,
            ),
            Table(
                f"Weights for the same receptive field, {C} channels in and out, no bias",
                ["layers", "parameters", "per C²"],
                [[name, n, n // C**2] for name, n in params.items()],
            ),
        ],
        notes=[
            "A kernel larger than the padded input is an error in nn.Conv2d, not an empty "
            f"output: {refused_ok} random configurations were refused, every one predicted by "
            "d(k − 1) + 1 > n + 2p.",
            f"The 7×7 field of three 3×3 layers is not uniform: with all-ones kernels its top "
            f"row has {', '.join(f'{v:g}' for v in edge)} paths to the output (a row of "
            f"trinomial coefficients), the centre {grad[4, 4].item():g}. Luo et al. 2016 show "
            "the effective receptive field is roughly Gaussian and much smaller than the "
            "theoretical one.",
        ],
    )
    result.claim(
        "floor((n + 2p − d(k − 1) − 1)/s) + 1 gives nn.Conv2d's output size for every random "
        "configuration (kernel, stride, padding, dilation per axis).",
        mismatches == 0 and checked == trials and refused_wrong == 0,
        f"{checked} configurations, {mismatches} mismatches; {refused_ok} refused as predicted",
    )
    result.claim(
        "padding='same' keeps the input size at stride 1 for every kernel and dilation; "
        "a strided conv refuses it.",
        same_ok == same_cases and "not supported for strided" in strided_same_error,
        f"{same_ok}/{same_cases} kept the size; stride 2: {strided_same_error!r}",
    )
    result.claim(
        "For an even kernel (k=4) 'same' pads 1 on the left/top and 2 on the right/bottom.",
        extra_right.item() < 1e-12 and extra_left.item() > 1e-3,
        f"vs pad (1, 2): {extra_right.item():.1e}; vs pad (2, 1): {extra_left.item():.2g}",
    )
    result.claim(
        "Two stacked 3×3 convolutions see 5×5 input pixels, three see 7×7 (measured by the "
        "gradient); strides and dilations follow r += (k − 1)·d·(product of strides below).",
        rf_ok and measured["two 3×3"] == 5 and measured["three 3×3"] == 7,
        "; ".join(f"{row[0]}: {row[1]}" for row in rf_rows),
    )
    result.claim(
        "They do it with fewer weights: 18C² vs 25C² for 5×5 and 27C² vs 49C² for 7×7.",
        params["two 3×3"] < params["one 5×5"] and params["three 3×3"] < params["one 7×7"],
        ", ".join(f"{name}: {n:,}" for name, n in params.items()),
    )
    result.claim(
        "Inside the receptive field the centre counts most: with all-ones kernels the centre "
        "pixel of a three-3×3 stack has 49× the gradient of a corner.",
        abs(centre_over_corner - 49) < 1e-3,
        f"centre/corner = {centre_over_corner:g}",
    )
    result.claim(
        "ConvTranspose2d with the conv's kernel, stride and padding maps the conv's output size "
        "back: (m − 1)s − 2p + k + output_padding, and it is the conv's adjoint "
        "(<conv(x), y> = <x, convT(y)>), not its inverse.",
        shape_ok == transpose_trials and adjoint_gap < 1e-10,
        f"{shape_ok}/{transpose_trials} sizes recovered; largest relative gap between "
        f"<conv(x), y> and <x, convT(y)>: {adjoint_gap:.1e}",
    )
    return result
