"""A tiny masked autoencoder (MAE): mask 75% of patches, encode only the visible ones, rebuild.

What it shows, measured on 16x16 synthetic images (oriented sinusoidal gratings with random
frequency, phase and contrast, plus noise) cut into 16 patches of 4x4 pixels:

- Why mask so much (He et al. 2021, arXiv 2111.06377): images are redundant. With 25% of the
  patches masked, filling each hole by interpolating from the visible pixels around it already
  works well; with 75% masked that interpolation fails, so a model must infer global structure
  (here: the grating's orientation, frequency and phase) from what is left.
- The asymmetric design: the encoder (2 Transformer blocks) sees only the 4 visible patch
  tokens; a lighter decoder (1 block) gets the encoded tokens plus a shared learned mask token
  at every masked position (with position embeddings) and predicts the pixels. The loss is the
  MSE on the masked patches only. Counted with FlopCounterMode, the encoder does about a
  quarter of the matmul work it would do on all 16 patches (attention even less).
- Trained (full mode, 2000 steps, about a minute), the MAE reconstructs the masked patches
  far better than predicting the mean image and than a classical pixel interpolation (this
  full-mode claim was checked on seeds 0 and 1 only; the tests run quick mode). What
  really happens at demo scale: training first sits on a plateau near the mean-image error
  for a few hundred steps, so quick mode skips the training and claims only the two points
  above.

Not shown (too slow for a demo): that the encoder's features transfer. MAE's features are
judged after fine-tuning; their linear-probe accuracy is lower than contrastive methods'.
SimMIM (Xie et al. 2021, arXiv 2111.09886) instead feeds mask tokens through the encoder.

Run: dlprep demo masked-autoencoder
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dlprep.demos._core import DemoContext, DemoResult, Table
from dlprep.demos._data import grating_images

STATISTICAL = True

SIDE, P = 16, 4  # image side, patch side
GRID = SIDE // P  # 4 x 4 patches
N_PATCH, PIX = GRID * GRID, P * P


def patchify(img: torch.Tensor) -> torch.Tensor:
    """(B, 1, 16, 16) -> (B, 16 patches, 16 pixels), row-major patch order."""
    b = img.shape[0]
    x = img.view(b, GRID, P, GRID, P).permute(0, 1, 3, 2, 4)
    return x.reshape(b, N_PATCH, PIX)


def images(n: int, g: torch.Generator) -> torch.Tensor:
    angle = math.pi * torch.rand(n, generator=g)
    freq = 0.5 + 1.5 * torch.rand(n, generator=g)  # 0.5-2 cycles per image: smooth images
    return patchify(grating_images(angle, freq, 0.05, g, side=SIDE))


def random_mask(b: int, ratio: float, g: torch.Generator) -> torch.Tensor:
    """(B, N) bool, True = masked; exactly round(ratio * N) masked per image."""
    n_mask = round(ratio * N_PATCH)
    order = torch.rand(b, N_PATCH, generator=g).argsort(1)
    return order < n_mask  # a random subset of positions per row


class Block(nn.Module):
    """Pre-LN Transformer block (bidirectional self-attention + MLP)."""

    def __init__(self, d: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), -1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class MAE(nn.Module):
    def __init__(self, d: int = 48):
        super().__init__()
        self.embed = nn.Linear(PIX, d)
        self.pos = nn.Parameter(0.02 * torch.randn(N_PATCH, d))
        self.encoder = nn.Sequential(Block(d), Block(d))  # the big part: visible tokens only
        self.mask_token = nn.Parameter(torch.zeros(d))
        self.dec_pos = nn.Parameter(0.02 * torch.randn(N_PATCH, d))
        self.decoder = Block(d)  # light decoder: all positions, mask tokens included
        self.head = nn.Linear(d, PIX)

    def encode(self, patches, mask):
        """Only visible patches go in: (B, N_vis, d). Every row has the same N_vis."""
        b, d = patches.shape[0], self.pos.shape[1]
        tokens = self.embed(patches) + self.pos  # (B, N, d)
        visible = tokens[~mask].view(b, -1, d)  # (B, N_vis, d): masked tokens dropped
        return self.encoder(visible)

    def forward(self, patches, mask):
        b, d = patches.shape[0], self.pos.shape[1]
        enc = self.encode(patches, mask)
        full = self.mask_token.expand(b, N_PATCH, d).clone()  # mask token everywhere ...
        full[~mask] = enc.reshape(-1, d)  # ... except where a visible patch was encoded
        return self.head(self.decoder(full + self.dec_pos))  # (B, N, PIX)


def unpatchify(x: torch.Tensor) -> torch.Tensor:
    """(B, 16, 16 pixels) -> (B, 16, 16) image."""
    b = x.shape[0]
    return x.view(b, GRID, GRID, P, P).permute(0, 1, 3, 2, 4).reshape(b, SIDE, SIDE)


def interpolate(patches, mask, iters: int = 150):
    """Baseline: fill masked pixels by repeated averaging of their 4 neighbours (harmonic
    inpainting from the visible pixels at the hole borders)."""
    img = unpatchify(patches)
    known = unpatchify((~mask)[..., None].expand_as(patches).float()) > 0
    fill = torch.where(known, img, torch.zeros_like(img))
    for _ in range(iters):
        padded = torch.nn.functional.pad(fill[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
        avg = (padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2]
               + padded[:, 1:-1, 2:]) / 4  # fmt: skip
        fill = torch.where(known, img, avg)
    return patchify(fill[:, None])


def masked_mse(pred, target, mask) -> float:
    return ((pred - target) ** 2).mean(-1)[mask].mean().item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    ratio, steps, batch = 0.75, ctx.pick(0, 2000), 128  # quick mode: no training

    # ---- 1. redundancy: interpolation at 25% vs 75% masking ---------------------------------
    test = images(1000, g)
    base = {}
    for r in (0.25, 0.75):
        m = random_mask(1000, r, g)
        base[r] = masked_mse(interpolate(test, m), test, m)
    signal = test.pow(2).mean().item()  # MSE of predicting 0 (the mean pixel is ~0)

    # ---- 2. train the MAE -----------------------------------------------------------------------
    pool = images(ctx.pick(0, 16384), g).to(device)  # training images
    model = MAE().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    for _ in range(steps):
        x = pool[torch.randint(0, pool.shape[0], (batch,), generator=g).to(device)]
        m = random_mask(batch, ratio, g).to(device)  # a fresh mask every time
        loss = ((model(x, m) - x) ** 2).mean(-1)[m].mean()  # masked patches only
        opt.zero_grad()
        loss.backward()
        opt.step()
    m_test = random_mask(1000, ratio, g)
    model.eval()
    with torch.no_grad():
        pred = model(test.to(device), m_test.to(device)).cpu()
    mae_err = masked_mse(pred, test, m_test)  # (untrained in quick mode: not claimed)
    fill_err = masked_mse(interpolate(test, m_test), test, m_test)

    # ---- 3. encoder work: visible tokens only vs all tokens -----------------------------------
    x, m = test[:64].to(device), m_test[:64].to(device)
    with torch.no_grad(), FlopCounterMode(display=False) as c_vis:
        model.encode(x, m)
    with torch.no_grad(), FlopCounterMode(display=False) as c_all:
        model.encode(x, torch.zeros_like(m))
    n_visible = int((~m[0]).sum())
    flop_ratio = c_vis.get_total_flops() / c_all.get_total_flops()

    result.tables.append(
        Table(
            f"Masked-patch MSE on 1000 test images (predicting zeros: {signal:.3f})",
            ["method", "masking", "MSE on masked patches"],
            [
                ["pixel interpolation", "25%", f"{base[0.25]:.4f}"],
                ["pixel interpolation", "75%", f"{base[0.75]:.4f}"],
            ],
        )
    )
    result.metrics = {
        "interp_mse": {str(k): v for k, v in base.items()},
        "mae_mse": mae_err if steps else None,
        "zero_prediction_mse": signal,
        "visible_tokens": n_visible,
        "encoder_flop_ratio_visible_vs_all": flop_ratio,
    }
    result.claim(
        "Images are redundant: interpolating masked pixels from the visible ones works far "
        "better at 25% masking than at 75% (error <= 0.6x).",
        base[0.25] <= 0.6 * base[0.75],
        f"interpolation MSE: 25% masked {base[0.25]:.4f}, 75% masked {base[0.75]:.4f}",
    )
    result.claim(
        f"The encoder sees only the visible 25% of patches ({n_visible} of {N_PATCH}) and does "
        "at most ~1/4 of the matmul work of encoding them all.",
        n_visible == N_PATCH // 4 and flop_ratio <= 0.26,
        f"{n_visible} visible tokens; encoder FLOPs visible / all = {flop_ratio:.3f}",
    )
    if steps:  # the training run: the full mode only (about a minute on a CPU)
        result.claim(
            "Trained at 75% masking, the MAE predicts the masked patches from the visible "
            "quarter far better than predicting the mean image (<= 0.5x) and than pixel "
            "interpolation (<= 0.5x).",
            mae_err <= 0.5 * signal and mae_err <= 0.5 * fill_err,
            f"MSE: MAE {mae_err:.4f}, zeros {signal:.4f}, pixel interpolation {fill_err:.4f}",
        )
        result.tables[0].rows.append([f"MAE ({steps} steps)", "75%", f"{mae_err:.4f}"])
    else:
        result.notes.append(
            "Quick mode does not train the MAE: a short run stays on a plateau near the "
            "mean-image error (measured while building the demo), and the run that learns takes "
            "about a minute. Run without --quick to train it (2000 steps): the masked-patch "
            "error then falls far below pixel interpolation's (0.018 vs 0.22 for seed 0)."
        )
    return result
