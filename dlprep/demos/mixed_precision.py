"""Mixed precision: fp16 vs bf16 vs fp32 — range, precision, loss scaling, GradScaler, memory.

What it shows. A float is sign + exponent (range) + mantissa (precision). fp16 has 5 exponent
bits and 11 bits of precision: its largest finite value is 65504 (70000 becomes inf) and its
smallest subnormal is 2^-24 ≈ 6e-8, so a gradient of 1e-8 becomes exactly 0. bf16 keeps
fp32's 8 exponent bits (max ≈ 3.4e38, 1e-8 survives) but has only 8 bits of precision: the
relative rounding error is up to 2^-8 (fp16: 2^-11), and 257 is not a bf16 number.

Loss scaling (Micikevicius et al. 2018, "Mixed Precision Training", arXiv 1710.03740) fixes
fp16's underflow: multiply the loss by S before backward, so every gradient in the backward
pass is S times larger and lands in fp16's range, then divide the fp32 weight gradients by S.
torch.amp.GradScaler does it dynamically: when the scaled gradients overflow (inf/NaN) it
skips optimizer.step() and multiplies S by backoff_factor (0.5); after growth_interval
(default 2000) clean steps it multiplies S by growth_factor (2). bf16 needs no loss scaling.

Memory: 2 bytes per value instead of 4. Autocast (torch.autocast) keeps fp32 weights and
runs matmuls in fp16/bf16, so what halves is the activation memory saved for backward; a
fully bf16 model with bf16 Adam states halves the per-parameter bytes too (16 -> 8), but a
bf16 weight swallows every update below half its spacing (1 + 0.001 = 1 in bf16): that is
why mixed precision keeps fp32 master weights.

What really happens. On an ordinary batch fp16 flushes most of the logit gradients to 0 and
the weight gradient is still within 1%: it is dominated by the uncertain examples, whose
gradients are large, and underflow hits the entries that matter least. Loss scaling matters
when the whole gradient sits low: late in training (confident predictions), or where the
loss is averaged over very many outputs. On a confidently classified batch fp16 without
scaling returns an all-zero gradient: training silently stops. (There even fp32 is ~2% off
float64: the true class's p - 1 is tiny and computed next to 1.)

Speed: tensor cores run fp16/bf16 matmuls many times faster than fp32 on a GPU; the speed
claim is made only on CUDA. On a CPU without bf16/fp16 instructions the same matmul is about
150x slower than fp32, so the CPU run keeps every low-precision tensor tiny.

Run: dlprep demo mixed-precision
"""

from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = False

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _mlp(d_in: int, hidden: int, d_out: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Linear(d_in, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, d_out),
    )


def _saved_activation_bytes(model, x, y, device, dtype) -> int:
    """Bytes of the tensors autograd saves for backward (parameters themselves excluded)."""
    param_ptrs = {p.data_ptr() for p in model.parameters()}
    saved = []

    def pack(t):
        if t.data_ptr() not in param_ptrs:
            saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(device.type, dtype=dtype or torch.float16, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
    return sum(saved)


def _train_state_bytes_per_param(model, x, y, dtype) -> float:
    """Parameters + gradients + Adam's two moments, after one step, in bytes per parameter."""
    model = model.to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    F.cross_entropy(model(x.to(dtype)).float(), y).backward()
    opt.step()
    n_params = sum(p.numel() for p in model.parameters())
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    total += sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
    for state in opt.state.values():
        total += sum(v.numel() * v.element_size() for v in state.values() if torch.is_tensor(v))
    return total / n_params


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    metrics = result.metrics

    # ---- 1. the formats: what torch.finfo says ----------------------------------------------
    rows = []
    for name, dt in DTYPES.items():
        fi = torch.finfo(dt)
        precision_bits = round(-math.log2(fi.eps)) + 1  # stored mantissa bits + the implicit 1
        exponent_bits = fi.bits - precision_bits  # bits = sign + exponent + (precision - 1)
        rows.append(
            [
                name,
                exponent_bits,
                precision_bits,
                f"{fi.max:.3g}",
                f"{fi.smallest_normal:.2g}",
                f"{fi.smallest_normal * fi.eps:.2g}",  # smallest subnormal
                f"{fi.eps:.2g}",
            ]
        )
        metrics[f"{name}_max"] = float(fi.max)
        metrics[f"{name}_eps"] = float(fi.eps)
        metrics[f"{name}_precision_bits"] = precision_bits
    result.tables.append(
        Table(
            "The three formats (torch.finfo)",
            ["dtype", "exp. bits", "precision", "max", "min normal", "min subnormal", "eps"],
            rows,
        )
    )

    # ---- 2. range: overflow at the top, underflow at the bottom ------------------------------
    big = torch.tensor([65504.0, 65519.0, 65520.0, 70000.0], device=device)  # fp32
    big16 = big.half().float().tolist()
    big_bf = big.bfloat16().float().tolist()
    metrics["70000_in_fp16"] = big16[3]
    metrics["70000_in_bf16"] = big_bf[3]
    result.claim(
        "fp16's largest finite value is 65504: 70000 (anything from 65520 up) becomes inf, "
        "while bf16 holds it (rounded to 70144).",
        big16[0] == 65504.0
        and big16[1] == 65504.0
        and math.isinf(big16[2])
        and math.isinf(big16[3])
        and math.isfinite(big_bf[3]),
        f"fp16: 65504 -> {big16[0]:g}, 65519 -> {big16[1]:g}, 65520 -> {big16[2]}, "
        f"70000 -> {big16[3]}; bf16: 70000 -> {big_bf[3]:g}",
    )

    # Gradients of many magnitudes, 1e-10 .. 1e-2: which ones survive the cast?
    magnitudes = torch.logspace(-10, -2, 9, device=device)  # (9,) in fp32
    in16 = magnitudes.half().float()
    in_bf = magnitudes.bfloat16().float()
    tiny = 1e-8
    tiny16 = torch.tensor(tiny, device=device).half().item()
    tiny_bf = torch.tensor(tiny, device=device).bfloat16().item()
    metrics["1e-8_in_fp16"] = tiny16
    metrics["1e-8_in_bf16"] = tiny_bf
    result.tables.append(
        Table(
            "A gradient value cast to each format",
            ["fp32 value", "as fp16", "as bf16"],
            [
                [f"{a:.0e}", f"{b:.3g}", f"{c:.4g}"]
                for a, b, c in zip(magnitudes.tolist(), in16.tolist(), in_bf.tolist(), strict=True)
            ],
        )
    )
    flushed = [a for a, b in zip(magnitudes.tolist(), in16.tolist(), strict=True) if b == 0]
    result.claim(
        "A gradient of 1e-8 underflows to exactly 0 in fp16 (its smallest subnormal is "
        "2^-24 ≈ 6e-8) but survives in bf16, which keeps fp32's exponent range.",
        tiny16 == 0.0 and abs(tiny_bf - tiny) / tiny < 2**-8 and (in_bf == 0).sum().item() == 0,
        f"1e-8 -> fp16 {tiny16:g}, bf16 {tiny_bf:.4g}; fp16 zeros {len(flushed)} of the "
        f"table's values (up to {max(flushed, default=0):.0e}), bf16 none: "
        f"{(in_bf == 0).sum().item() == 0}",
    )

    # ---- 3. precision: relative rounding error of random values ------------------------------
    n = ctx.pick(20_000, 200_000)
    # magnitudes e^-5..e^5 with random signs: all inside fp16's normal range
    values = torch.exp(torch.empty(n).uniform_(-5, 5, generator=g))
    values = values * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    values = values.to(device)
    errors = {}
    for name in ("fp16", "bf16"):
        rel = ((values.to(DTYPES[name]).float() - values) / values).abs()
        errors[name] = (rel.max().item(), rel.mean().item())
        metrics[f"{name}_max_rel_rounding_error"] = errors[name][0]
        metrics[f"{name}_mean_rel_rounding_error"] = errors[name][1]
    ratio = errors["bf16"][1] / errors["fp16"][1]
    result.tables.append(
        Table(
            f"Relative rounding error of {n} random values (round to nearest)",
            ["dtype", "max", "mean", "unit roundoff 2^-p"],
            [
                [
                    "fp16",
                    f"{errors['fp16'][0]:.2e}",
                    f"{errors['fp16'][1]:.2e}",
                    f"2^-11 = {2**-11:.2e}",
                ],
                [
                    "bf16",
                    f"{errors['bf16'][0]:.2e}",
                    f"{errors['bf16'][1]:.2e}",
                    f"2^-8 = {2**-8:.2e}",
                ],
            ],
        )
    )
    result.claim(
        "bf16 rounds to 8 bits of precision (relative error up to 2^-8 ≈ 0.4%), fp16 to 11 "
        "(up to 2^-11 ≈ 0.05%): bf16's rounding error is about 8x fp16's.",
        2**-9 < errors["bf16"][0] <= 2**-8
        and 2**-12 < errors["fp16"][0] <= 2**-11
        and 6 < ratio < 10,
        f"max error bf16 {errors['bf16'][0]:.2e} (2^-8 = {2**-8:.2e}), fp16 "
        f"{errors['fp16'][0]:.2e} (2^-11 = {2**-11:.2e}); mean error ratio {ratio:.2f}",
    )
    counts = torch.tensor([256.0, 257.0, 2048.0, 2049.0], device=device)
    c_bf = counts.bfloat16().float().tolist()
    c16 = counts.half().float().tolist()
    metrics["257_in_bf16"] = c_bf[1]
    metrics["2049_in_fp16"] = c16[3]
    result.claim(
        "With 8 bits of precision bf16 cannot represent 257 (it rounds to 256); fp16's 11 "
        "bits stop at 2049 — never keep counters or accumulate long sums in 16 bits.",
        c_bf[0] == 256 and c_bf[1] == 256 and c16[1] == 257 and c16[3] == 2048,
        f"bf16: 257 -> {c_bf[1]:g}; fp16: 257 -> {c16[1]:g}, 2049 -> {c16[3]:g}",
    )

    # Why AMP keeps fp32 "master" weights: a weight stored in bf16 swallows small updates.
    # Near 1.0 bf16's spacing is 2^-7 ≈ 0.0078, so w + 1e-3 rounds back to w, step after step.
    w_bf = torch.ones(1, device=device, dtype=torch.bfloat16)
    w_32 = torch.ones(1, device=device)
    for _ in range(100):
        w_bf = w_bf + torch.tensor(1e-3, device=device, dtype=torch.bfloat16)
        w_32 = w_32 + 1e-3
    metrics.update(bf16_weight_after_100_updates=w_bf.item(), fp32_weight_after=w_32.item())
    result.claim(
        "A weight kept in bf16 ignores small updates: 100 steps of +0.001 leave 1.0 at 1.0 "
        "(the spacing there is 2^-7), while fp32 reaches 1.1 — hence fp32 master weights.",
        w_bf.item() == 1.0 and abs(w_32.item() - 1.1) < 1e-4,
        f"after 100 updates of +1e-3: bf16 {w_bf.item():g}, fp32 {w_32.item():.5f}",
    )

    # ---- 4. loss scaling on a confidently classified batch ----------------------------------
    # A small classifier and a batch of 1024 examples it already gets right by a logit margin
    # of >= 12.5 nats, as late in training: softmax - onehot ≈ e^-12.5 per example, divided by
    # the batch size (the mean), is ~1e-8 per logit: below half of fp16's smallest subnormal.
    batch = 1024
    model = _mlp(32, 64, 10).to(device)
    with torch.no_grad():
        model[2].weight.mul_(40.0)  # a confident model: large logits
    pool = torch.randn(16384, 32, generator=g).to(device)
    with torch.no_grad():
        logits = model(pool)
        top2 = logits.topk(2, dim=1).values
        margin = top2[:, 0] - top2[:, 1]  # (16384,)
    keep = (margin >= 12.5).nonzero().squeeze(1)[:batch]
    x, y = pool[keep], logits[keep].argmax(dim=1)  # (B, 32), (B,)
    model64 = copy.deepcopy(model).double()  # the reference: the same model in float64

    def grads(dtype, scale: float, net=model, batch=(x, y)):
        """Weight gradients (divided by `scale`) and the gradient reaching the logits."""
        xb, yb = batch
        net.zero_grad(set_to_none=True)
        captured = {}
        with torch.autocast(device.type, dtype=dtype or torch.float16, enabled=dtype is not None):
            out = net(xb.to(next(net.parameters()).dtype))  # (B, 10): 16-bit under autocast
        out.register_hook(lambda grad: captured.setdefault("logits", grad))
        loss = F.cross_entropy(out.float() if dtype else out, yb)  # the loss in fp32 (autocast)
        (loss * scale).backward()
        flat = torch.cat([p.grad.flatten() for p in net.parameters()]).double() / scale
        return flat, captured["logits"], loss.item()

    scale = 2.0**16  # GradScaler's default init_scale
    ref, ref_logit_grad, conf_loss = grads(None, 1.0, model64)
    g32, _, _ = grads(None, 1.0)
    g16, g16_logit_grad, _ = grads(torch.float16, 1.0)
    g16s, _, _ = grads(torch.float16, scale)
    gbf, _, _ = grads(torch.bfloat16, 1.0)
    gbf_s, _, _ = grads(torch.bfloat16, scale)

    def rel_err(a):
        return ((a - ref).norm() / ref.norm()).item()

    def row(name, scale_name, grad):
        zeros = (grad == 0).double().mean().item()
        return [
            name,
            scale_name,
            f"{grad.norm().item():.3e}",
            f"{zeros:.0%}",
            f"{rel_err(grad):.1e}",
        ]

    zero16 = (g16_logit_grad == 0).float().mean().item()
    f16_cos = F.cosine_similarity(g16s, ref, dim=0).item()
    bf_cos = F.cosine_similarity(gbf, ref, dim=0).item()
    max_logit_grad = ref_logit_grad.abs().max().item()
    metrics.update(
        confident_batch_size=len(keep),
        confident_batch_loss=conf_loss,
        max_abs_logit_grad=max_logit_grad,
        fp16_logit_grads_zero=zero16,
        fp32_rel_error=rel_err(g32),
        fp16_unscaled_rel_error=rel_err(g16),
        fp16_scaled_rel_error=rel_err(g16s),
        bf16_rel_error=rel_err(gbf),
        fp16_scaled_cosine=f16_cos,
        bf16_cosine=bf_cos,
    )
    result.tables.append(
        Table(
            f"Weight gradient on a confident batch (B={len(keep)}, loss {conf_loss:.1e}); "
            "error vs float64",
            ["autocast", "loss scale", "‖grad‖", "entries exactly 0", "rel. error"],
            [
                row("off (fp32)", "1", g32),
                row("fp16", "1", g16),
                row("fp16", "2^16", g16s),
                row("bf16", "1", gbf),
                row("bf16", "2^16", gbf_s),
            ],
        )
    )
    result.claim(
        "On a confidently classified batch every logit gradient is below 2^-25 (half fp16's "
        "smallest subnormal): fp16 without loss scaling rounds them all to 0 and returns an "
        "all-zero weight gradient (training silently stops).",
        max_logit_grad < 2**-25 and zero16 == 1.0 and g16.norm().item() == 0,
        f"max |dL/dlogit| = {max_logit_grad:.1e} < 2^-25 = {2**-25:.1e}; fp16 logit grads "
        f"zero: {zero16:.0%}; ‖fp16 grad‖ = {g16.norm().item()}",
    )
    result.claim(
        "Scaling the loss by 2^16 (and the fp32 weight gradients by 1/2^16) recovers the "
        "gradient: fp16 with loss scaling is about as accurate as plain fp32 (within 1.5x of "
        "fp32's error against float64).",
        rel_err(g16s) < 1.5 * rel_err(g32) and f16_cos > 0.999,
        f"relative error vs float64: fp16 unscaled {rel_err(g16):.2f}, fp16 scaled "
        f"{rel_err(g16s):.1e} (cosine {f16_cos:.5f}), fp32 {rel_err(g32):.1e}",
    )
    # bf16: nothing underflows, so a power-of-two scale changes no rounding at all. Its larger
    # error comes from the forward pass: logits of ~30 rounded to 8 bits move by ~0.1, and the
    # gradient here is proportional to e^-margin, so it inherits that error.
    max_logit = logits[keep].abs().max().item()
    result.claim(
        "bf16 needs no loss scaling: scaling by 2^16 leaves its gradient bit-identical "
        "(nothing underflowed); its error (a few %) comes from rounding the large logits to "
        "8 bits in the forward pass.",
        torch.equal(gbf, gbf_s) and rel_err(gbf) < 0.15 and bf_cos > 0.99,
        f"bf16 scaled == unscaled: {torch.equal(gbf, gbf_s)}; relative error "
        f"{rel_err(gbf):.1e}, cosine {bf_cos:.4f}; logits up to {max_logit:.0f}, where bf16's "
        f"spacing is {2 ** (math.floor(math.log2(max_logit)) - 7):.3g}",
    )

    # The same model on an ordinary batch (no filtering: margins from ~0 up, labels = its own
    # predictions). Many logit gradients still underflow, but they are the small ones.
    ordinary = (pool[:batch], logits[:batch].argmax(dim=1))
    ord_ref, ord_ref_logit, _ = grads(None, 1.0, model64, ordinary)
    ord16, ord16_logit, _ = grads(torch.float16, 1.0, model, ordinary)
    ord_flushed = ((ord16_logit == 0) & (ord_ref_logit != 0)).float().mean().item()
    ord_err = ((ord16 - ord_ref).norm() / ord_ref.norm()).item()
    metrics.update(ordinary_fp16_logit_grads_flushed=ord_flushed, ordinary_fp16_rel_error=ord_err)
    result.claim(
        "On an ordinary batch of the same model, fp16 without scaling still flushes many "
        "logit gradients to 0, yet the weight gradient is nearly right (error < 2%): the "
        "gradient is dominated by the uncertain examples, whose gradients are large.",
        ord_flushed > 0.1 and ord_err < 0.02,
        f"{ord_flushed:.0%} of the nonzero logit gradients flushed to 0; weight gradient "
        f"relative error {ord_err:.1e}",
    )

    # ---- 5. GradScaler: dynamic loss scale --------------------------------------------------
    # Start with a scale that is far too large (2^30): the scaled gradients overflow fp16 in the
    # backward pass. GradScaler sees inf in the (fp32) weight gradients, skips the step and
    # halves the scale, until the gradients fit; after growth_interval clean steps it doubles.
    model = _mlp(16, 32, 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0**30, growth_interval=3)
    xb = torch.randn(32, 16, generator=g).to(device)  # (32, 16)
    yb = torch.randint(0, 10, (32,), generator=g).to(device)
    steps = []
    for step in range(ctx.pick(24, 40)):
        before = torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16):
            loss = F.cross_entropy(model(xb).float(), yb)
        scale_used = scaler.get_scale()
        scaler.scale(loss).backward()
        finite = all(p.grad.isfinite().all().item() for p in model.parameters())
        scaler.step(opt)
        scaler.update()
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        steps.append(
            {
                "step": step,
                "scale": scale_used,
                "grads_finite": finite,
                "params_changed": not torch.equal(before, after),
                "next_scale": scaler.get_scale(),
            }
        )
    skipped = [s for s in steps if not s["grads_finite"]]
    clean = [s for s in steps if s["grads_finite"]]
    metrics["grad_scaler_scales"] = [s["scale"] for s in steps]
    metrics["grad_scaler_skipped_steps"] = len(skipped)
    result.curves.append(
        Curve(
            "GradScaler's loss scale per step (starts at 2^30, growth_interval=3)",
            "step",
            {"log2(scale)": [math.log2(s["scale"]) for s in steps]},
        )
    )
    result.tables.append(
        Table(
            "GradScaler, step by step",
            ["step", "scale", "grads finite", "step taken", "next scale"],
            [
                [
                    s["step"],
                    f"2^{math.log2(s['scale']):g}",
                    s["grads_finite"],
                    s["params_changed"],
                    f"2^{math.log2(s['next_scale']):g}",
                ]
                for s in steps
            ],
        )
    )
    halved = all(s["next_scale"] == s["scale"] / 2 for s in skipped)
    untouched = all(not s["params_changed"] for s in skipped)
    result.claim(
        "When the scaled gradients overflow (inf/NaN), GradScaler skips optimizer.step() "
        "(parameters bit-identical) and halves the scale.",
        len(skipped) >= 3 and halved and untouched,
        f"{len(skipped)} overflowing steps, scales "
        f"{sorted({int(math.log2(s['scale'])) for s in skipped}, reverse=True)} (log2); "
        f"all halved: {halved}; all left the parameters unchanged: {untouched}",
    )
    grew = [
        s
        for i, s in enumerate(steps)
        if s["next_scale"] == 2 * s["scale"]
        and i >= 2
        and all(steps[j]["grads_finite"] for j in (i - 2, i - 1, i))
    ]
    result.claim(
        "Clean steps update the parameters, and after growth_interval clean steps in a row the "
        "scale doubles again (then backs off if that overflows): the scale hovers just under "
        "the largest value that fits.",
        len(clean) > 0 and all(s["params_changed"] for s in clean) and len(grew) >= 1,
        f"{len(clean)} clean steps, all updated: "
        f"{all(s['params_changed'] for s in clean)}; doublings after 3 clean steps: "
        f"{len(grew)}; final scale 2^{math.log2(steps[-1]['next_scale']):g}",
    )

    # ---- 6. memory ----------------------------------------------------------------------------
    mem_rows = [[name, torch.empty(0, dtype=dt).element_size()] for name, dt in DTYPES.items()]
    result.tables.append(Table("Bytes per value", ["dtype", "bytes"], mem_rows))
    mem_model = torch.nn.Sequential(
        torch.nn.Linear(32, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    ).to(device)
    xm = torch.randn(256, 32, generator=g).to(device)  # (256, 32)
    ym = torch.randint(0, 10, (256,), generator=g).to(device)
    act32 = _saved_activation_bytes(mem_model, xm, ym, device, None)
    act_bf = _saved_activation_bytes(mem_model, xm, ym, device, torch.bfloat16)
    bpp32 = _train_state_bytes_per_param(_mlp(32, 64, 10).to(device), xm, ym, torch.float32)
    bpp_bf = _train_state_bytes_per_param(_mlp(32, 64, 10).to(device), xm, ym, torch.bfloat16)
    metrics.update(
        saved_activation_bytes_fp32=act32,
        saved_activation_bytes_autocast_bf16=act_bf,
        adam_bytes_per_param_fp32=bpp32,
        adam_bytes_per_param_bf16=bpp_bf,
    )
    result.tables.append(
        Table(
            "Training memory, measured",
            ["what", "fp32", "16-bit", "ratio"],
            [
                [
                    "activations saved for backward (autocast bf16)",
                    act32,
                    act_bf,
                    f"{act_bf / act32:.2f}",
                ],
                [
                    "bytes/param: weights + grads + Adam m, v (all bf16)",
                    f"{bpp32:.2f}",
                    f"{bpp_bf:.2f}",
                    f"{bpp_bf / bpp32:.2f}",
                ],
            ],
        )
    )
    result.claim(
        "Autocast roughly halves the activations saved for backward (it keeps fp32 weights: "
        "the weights' bytes do not shrink under AMP).",
        0.4 < act_bf / act32 < 0.65,
        f"saved for backward: fp32 {act32} B, autocast bf16 {act_bf} B "
        f"(ratio {act_bf / act32:.2f}; the 16-bit copies of the weights are counted)",
    )
    result.claim(
        "Training with Adam costs 16 bytes per parameter in fp32 (weights, gradients, two "
        "moments: 4 each) and 8 when all of them are bf16.",
        abs(bpp32 - 16) < 0.1 and abs(bpp_bf - 8) < 0.1,
        f"measured {bpp32:.2f} and {bpp_bf:.2f} bytes/param",
    )

    # ---- 7. speed: only where there are tensor cores --------------------------------------------
    if device.type == "cuda":
        n_mm = ctx.pick(4096, 8192)
        a = torch.randn(n_mm, n_mm, device=device)
        b = torch.randn(n_mm, n_mm, device=device)

        def timed(dtype) -> float:
            with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
                for _ in range(3):  # warm-up (kernel selection)
                    a @ b
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(10):
                    a @ b
                torch.cuda.synchronize()
            return (time.perf_counter() - start) / 10

        t32, t16, tbf = timed(None), timed(torch.float16), timed(torch.bfloat16)
        tflops = {
            k: 2 * n_mm**3 / t / 1e12 for k, t in (("fp32", t32), ("fp16", t16), ("bf16", tbf))
        }
        metrics.update(matmul_seconds_fp32=t32, matmul_seconds_fp16=t16, matmul_seconds_bf16=tbf)
        result.tables.append(
            Table(
                f"{n_mm}x{n_mm} matmul on {torch.cuda.get_device_name(device)}",
                ["dtype", "ms", "TFLOP/s"],
                [
                    [k, f"{t * 1e3:.2f}", f"{tflops[k]:.1f}"]
                    for k, t in (("fp32", t32), ("fp16", t16), ("bf16", tbf))
                ],
            )
        )
        result.claim(
            "On a GPU, autocast's fp16/bf16 matmul (tensor cores) is more than 2x faster than "
            "fp32.",
            t32 / t16 > 2 and t32 / tbf > 2,
            f"speed-up fp16 {t32 / t16:.1f}x, bf16 {t32 / tbf:.1f}x "
            f"(TF32 for fp32 matmuls: {torch.backends.cuda.matmul.allow_tf32})",
        )
    else:
        result.notes.append(
            "No speed claim on CPU: without bf16/fp16 instructions a 16-bit matmul under "
            "autocast is ~150x slower than fp32 here, so this run keeps those tensors tiny. "
            "Run with --device cuda to measure the tensor-core speed-up."
        )
    result.notes.append(
        f"Even fp32 is {rel_err(g32):.1%} off float64 on the confident batch: the true "
        "class's gradient p - 1 (-1e-5 or smaller) is computed next to 1, where fp32's spacing is "
        "2^-24 ≈ 6e-8. Very confident predictions lose gradient precision in any format; "
        "fp16 adds little once the loss is scaled.",
    )
    return result
