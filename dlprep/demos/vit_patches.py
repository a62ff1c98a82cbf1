"""ViT: patch embedding is a strided conv, attention ignores patch order, CNNs win on little data.

What it shows, measured:

- Patch embedding (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", arXiv 2010.11929):
  cut the image into non-overlapping P x P patches, flatten each (C * P * P values) and apply
  one shared linear map. That is exactly nn.Conv2d(C, D, kernel_size=P, stride=P): the demo
  copies the weights across and gets the same tokens. A 224 x 224 image with P = 16 gives
  14 x 14 = 196 tokens, plus one learnable [class] token whose final state feeds the head.
- Self-attention treats its input as a SET: without position embeddings, shuffling the patches
  leaves the class-token output unchanged (to float precision): the model cannot know where a
  patch was. With learned position embeddings the output changes. Everything spatial a ViT
  knows (locality, neighbourhoods, translation) it has to learn from data.
- Inductive bias vs data: a small CNN (local 5x5 and 3x3 filters shared over positions, global
  average pooling) and a small ViT (patch 4, 2 layers, width 32) trained on noisy oriented
  gratings (4 classes). With 40 training images the CNN is far ahead; with 10x more data the
  ViT closes much of the gap. The paper's version: ViT trained on ImageNet-1k alone trails
  comparable ResNets, and overtakes them only when pretrained on 14M-300M images (ImageNet-21k,
  JFT-300M); DeiT (Touvron et al. 2021) later reached ResNet-level accuracy on ImageNet-1k
  alone with strong augmentation, regularisation and distillation. "ViTs need huge data" is
  really "ViTs need huge data OR heavy augmentation/regularisation to make up for the missing
  priors".
- At this toy scale the ViT does not overtake the CNN even with the larger set; the claim is
  only that the gap shrinks.

Run: dlprep demo vit-patches
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table
from dlprep.demos._data import grating_images

STATISTICAL = True

SIDE, PATCH, WIDTH = 16, 4, 32


class TinyViT(nn.Module):
    def __init__(self, n_classes: int, position: bool = True, depth: int = 2):
        super().__init__()
        self.embed = nn.Conv2d(1, WIDTH, PATCH, stride=PATCH)  # the patch embedding
        n_tokens = (SIDE // PATCH) ** 2  # 16 patches
        self.cls = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos = nn.Parameter(0.02 * torch.randn(1, n_tokens + 1, WIDTH)) if position else None
        layer = nn.TransformerEncoderLayer(
            WIDTH, 4, 2 * WIDTH, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, n_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x).flatten(2).transpose(1, 2)  # (B, D, 4, 4) -> (B, 16, D)

    def forward_tokens(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1)  # (B, 17, D)
        if self.pos is not None:
            t = t + self.pos
        return self.head(self.norm(self.encoder(t)[:, 0]))  # the class token's final state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(self.tokens(x))


def small_cnn(n_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(),  # (B, 16, 8, 8)
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # (B, 32)
        nn.Linear(32, n_classes),
    )  # fmt: skip


def gratings(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n noisy 16x16 gratings; the class is one of 4 orientations, frequency random."""
    y = torch.randint(0, 4, (n,), generator=g)
    freq = 1.5 + 2.0 * torch.rand(n, generator=g)
    return grating_images(y.float() * math.pi / 4, freq, 1.0, g, SIDE), y


def train(model: nn.Module, x, y, steps: int, lr: float, g: torch.Generator) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=g).to(x.device)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. patch embedding == strided convolution -------------------------------------------
    x = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64).to(device)  # (B, C, H, W)
    p, d = 8, 24
    patches = x.unfold(2, p, p).unfold(3, p, p)  # (B, C, 4, 4, p, p)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 16, 3 * p * p)  # (B, N, C*p*p)
    linear = nn.Linear(3 * p * p, d).to(device, torch.float64)
    by_hand = linear(patches)  # (B, N, D): one shared linear map per flattened patch
    conv = nn.Conv2d(3, d, p, stride=p).to(device, torch.float64)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.view(d, 3, p, p))
        conv.bias.copy_(linear.bias)
        by_conv = conv(x).flatten(2).transpose(1, 2)  # (B, D, 4, 4) -> (B, N, D)
    err = (by_hand - by_conv).abs().max().item()
    result.claim(
        "Flattening P x P patches and applying one shared Linear layer is exactly "
        "Conv2d(kernel_size=P, stride=P).",
        err < 1e-10,
        f"32x32x3 image, P = {p}: {by_hand.shape[1]} tokens of width {d}; max difference {err:.1e}",
    )

    # ---- 2. attention sees a set: shuffling patches with and without position embeddings ---
    shuffle = torch.randperm(16, generator=g).to(device)
    img = torch.randn(4, 1, SIDE, SIDE, generator=g).to(device)
    changes = {}
    for position in (False, True):
        vit = TinyViT(4, position=position).to(device).eval()
        with torch.no_grad():
            t = vit.tokens(img)
            out, out_shuffled = vit.forward_tokens(t), vit.forward_tokens(t[:, shuffle])
        changes[position] = ((out - out_shuffled).abs().max() / out.abs().max()).item()
    result.claim(
        "Without position embeddings a ViT's output does not change when the patches are "
        "shuffled (relative change < 1e-4); with them it does (> 1e-3).",
        changes[False] < 1e-4 and changes[True] > 1e-3,
        f"relative change of the logits: no position embedding {changes[False]:.1e}, learned "
        f"position embedding {changes[True]:.1e}",
    )

    # ---- 3. inductive bias: CNN vs ViT with little and with more data ----------------------
    x_test, y_test = (t.to(device) for t in gratings(1000, g))
    sizes = [40, 400]
    steps = ctx.pick(150, 400)
    acc = {}
    for n in sizes:
        x_tr, y_tr = (t.to(device) for t in gratings(n, g))
        for name in ("CNN", "ViT"):
            model = (small_cnn(4) if name == "CNN" else TinyViT(4)).to(device)
            train(model, x_tr, y_tr, steps, 3e-3 if name == "CNN" else 1e-3, g)
            model.eval()
            with torch.no_grad():
                acc[(name, n)] = (model(x_test).argmax(1) == y_test).float().mean().item()
    result.tables.append(
        Table(
            f"Test accuracy on 4 grating orientations (chance 0.25), {steps} AdamW steps",
            ["training images", "CNN", "ViT (patch 4, 2 layers)"],
            [[n, round(acc[("CNN", n)], 3), round(acc[("ViT", n)], 3)] for n in sizes],
        )
    )
    gap_small = acc[("CNN", 40)] - acc[("ViT", 40)]
    gap_large = acc[("CNN", 400)] - acc[("ViT", 400)]
    result.claim(
        "With 40 training images the CNN's built-in locality and weight sharing win by more "
        "than 20 points.",
        gap_small > 0.2,
        f"CNN {acc[('CNN', 40)]:.3f}, ViT {acc[('ViT', 40)]:.3f}",
    )
    result.claim(
        "With 10x more data the ViT closes much of the gap (it shrinks by more than half).",
        gap_large < 0.5 * gap_small,
        f"gap CNN - ViT: {gap_small:.3f} with 40 images, {gap_large:.3f} with 400",
    )
    result.metrics = {
        "patch_embed_vs_conv_error": err,
        "shuffle_change_no_position": changes[False],
        "shuffle_change_with_position": changes[True],
        **{f"acc_{name}_{n}": v for (name, n), v in acc.items()},
    }
    result.notes.append(
        "Token count for a real ViT-B/16 at 224x224: (224/16)^2 = 196 patches + 1 class token "
        "= 197; attention cost grows with the square of that number, which is why smaller "
        "patches or larger images get expensive (and why Swin restricts attention to windows)."
    )
    return result
