"""Model compression: int8 quantisation, magnitude pruning and knowledge distillation, measured.

What it shows, on an MLP classifier trained on synthetic data:

(a) Quantisation. Symmetric per-channel int8: each output row of a weight matrix gets a scale
    s = max|w| / 127 and is stored as round(w / s) in int8, 1 byte instead of 4, so the saved
    model is ~4x smaller and accuracy barely moves. Per-channel scales beat one scale per
    tensor, because one large row no longer coarsens every other row. "Dynamic" quantisation
    also rounds the activations to int8 at run time, with a scale per row (per token) computed
    from the input itself, and multiplies integers with an int32 accumulator: the scheme of
    torchao's Int8DynamicActivationInt8WeightConfig, and where int8 kernels give speed-ups.
(b) Magnitude pruning (torch.nn.utils.prune.global_unstructured with L1Unstructured): zero
    the smallest |w| across all layers. Without retraining, 50% costs 1-3 points here
    and 95% collapses the model; pruning then fine-tuning with the mask kept brings 50%
    back to the dense model's accuracy. But unstructured zeros are still stored and still
    multiplied: a dense matmul with 95% zeros takes as long, and the saved tensor is as
    big, until you switch to a sparse format (which stores an index per nonzero and only
    pays at high sparsity) or prune whole rows/channels (structured pruning).
(c) Knowledge distillation (Hinton, Vinyals & Dean 2015, arXiv 1503.02531): a small student
    is trained on the teacher's softened outputs softmax(z / T), with the KL term multiplied
    by T² so its gradients keep their size as T changes, mixed with the hard-label loss.

What really happens. Distillation's gain depends on the regime. Here the teacher learned from
20,000 examples and the student sees only a 500-example transfer set: the soft targets carry
what the teacher learned from the rest, and the student gains several points over training
on the 500 hard labels (Hinton et al. saw the same with 3% of their speech data). Given all
20,000 examples, the same student does better on the hard labels than on the soft targets:
these labels are exact and the teacher is ~80% accurate, so its soft targets bring its
errors along. Distillation helps when the student lacks data (or labels are noisy, or the
teacher knows more than the labels say); the numbers are measured over several student seeds.

Why by hand: torch.ao.quantization.quantize_dynamic still exists in torch 2.13 but warns that
it is deprecated (the PyTorch docs plan to delete torch.ao.quantization and point to torchao's
quantize_(model, Int8DynamicActivationInt8WeightConfig()); torchao is not a dependency here),
and its kernels are CPU-only. The arithmetic written out below runs on any device; it
measures accuracy and size, not int8 speed.

Run: dlprep demo model-compression
"""

from __future__ import annotations

import copy
import io
import time

import torch
import torch.nn.functional as F
from torch.nn.utils import prune

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

D_IN, N_CLASSES = 20, 10
N_TRAIN, N_TRANSFER, N_TEST = 20_000, 500, 4000
TEMPERATURE, ALPHA = 4.0, 0.9  # distillation: softening and weight of the soft-target loss


def _mlp(hidden: int, depth: int) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = [torch.nn.Linear(D_IN, hidden), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(hidden, hidden), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(hidden, N_CLASSES))


def _train(model, x, y, steps, g, teacher_logits=None, lr=3e-3):
    """AdamW on minibatches of 128; with teacher_logits, Hinton's distillation loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=g).to(x.device)
        logits = model(x[idx])  # (128, C)
        loss = F.cross_entropy(logits, y[idx])
        if teacher_logits is not None:
            # KL(softmax(teacher / T) || softmax(student / T)), times T² (Hinton et al.)
            soft = F.kl_div(
                F.log_softmax(logits / TEMPERATURE, dim=1),
                F.softmax(teacher_logits[idx] / TEMPERATURE, dim=1),
                reduction="batchmean",
            )
            loss = ALPHA * TEMPERATURE**2 * soft + (1 - ALPHA) * loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def _accuracy(model, x, y) -> float:
    return (model(x).argmax(dim=1) == y).float().mean().item()


def _saved_bytes(obj) -> int:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getbuffer().nbytes


def _quantise_per_channel(w: torch.Tensor):
    """Symmetric int8, one scale per output row: w ≈ q * scale, q in [-127, 127]."""
    scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127  # (out, 1)
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)  # (out, in)
    return q, scale


def _quantise_per_tensor(w: torch.Tensor):
    scale = w.abs().max().clamp_min(1e-12) / 127
    return torch.round(w / scale).clamp(-127, 127).to(torch.int8), scale


class _Int8Linear(torch.nn.Module):
    """A Linear layer stored as int8 weights + fp32 scales.

    dynamic=False: weight-only; dequantise and multiply in float.
    dynamic=True: also round each input row to int8 (its own scale, computed at run time) and
    multiply integers. The products are accumulated in float32, exactly: every partial sum
    of int8 x int8 products here stays below 2^24 (128 x 127² ≈ 2e6), so this equals an
    int32 accumulator (with TF32 off, PyTorch's default).
    """

    def __init__(self, linear: torch.nn.Linear, dynamic: bool):
        super().__init__()
        q, scale = _quantise_per_channel(linear.weight.detach())
        self.register_buffer("q", q)  # (out, in) int8
        self.register_buffer("scale", scale)  # (out, 1) fp32
        self.register_buffer("bias", linear.bias.detach().clone())
        self.dynamic = dynamic

    def forward(self, x):  # x (N, in)
        if not self.dynamic:
            return x @ (self.q.float() * self.scale).T + self.bias
        x_scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127  # (N, 1)
        xq = torch.round(x / x_scale).clamp(-127, 127)  # (N, in), integer values
        acc = xq @ self.q.float().T  # (N, out): the int32 accumulator, exact in float32
        return acc * x_scale * self.scale.T + self.bias


def _quantised(model, dynamic: bool) -> torch.nn.Sequential:
    layers = [_Int8Linear(m, dynamic) if isinstance(m, torch.nn.Linear) else m for m in model]
    return torch.nn.Sequential(*layers)


def _min_time(fn, repeats: int, device: torch.device) -> float:
    """Best of `repeats` wall-clock timings (the minimum is the least disturbed by noise)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    metrics = result.metrics

    # ---- the task and the model to compress -------------------------------------------------
    # Labels come from a random tanh network: 10 classes with curved boundaries in 20-D.
    w1 = torch.randn(D_IN, 64, generator=g)
    w2 = torch.randn(64, N_CLASSES, generator=g)

    def make(n):
        x = torch.randn(n, D_IN, generator=g)  # (n, 20)
        y = (torch.tanh(x @ w1 / D_IN**0.5) @ w2).argmax(dim=1)  # (n,)
        return x.to(device), y.to(device)

    x_train, y_train = make(N_TRAIN)
    x_test, y_test = make(N_TEST)
    teacher = _train(_mlp(128, 2).to(device), x_train, y_train, ctx.pick(1000, 3000), g)
    teacher.eval()
    acc_fp32 = _accuracy(teacher, x_test, y_test)
    n_params = sum(p.numel() for p in teacher.parameters())
    metrics.update(model_params=n_params, fp32_test_accuracy=acc_fp32)

    # ---- (a) int8 quantisation ---------------------------------------------------------------
    linears = [m for m in teacher if isinstance(m, torch.nn.Linear)]
    err_channel, err_tensor = [], []
    for m in linears:
        w = m.weight.detach()
        q, s = _quantise_per_channel(w)
        err_channel.append(((q.float() * s - w).norm() / w.norm()).item())
        q, s = _quantise_per_tensor(w)
        err_tensor.append(((q.float() * s - w).norm() / w.norm()).item())
    weight_only = _quantised(teacher, dynamic=False)
    dynamic = _quantised(teacher, dynamic=True)
    acc_w8 = _accuracy(weight_only, x_test, y_test)
    acc_w8a8 = _accuracy(dynamic, x_test, y_test)
    size_fp32 = _saved_bytes(teacher.state_dict())
    size_int8 = _saved_bytes(weight_only.state_dict())
    with torch.no_grad():
        agree = (dynamic(x_test).argmax(1) == teacher(x_test).argmax(1)).float().mean().item()
    metrics.update(
        int8_weight_rel_error_per_channel=max(err_channel),
        int8_weight_rel_error_per_tensor=max(err_tensor),
        int8_weight_only_accuracy=acc_w8,
        int8_dynamic_accuracy=acc_w8a8,
        int8_dynamic_agreement_with_fp32=agree,
        saved_bytes_fp32=size_fp32,
        saved_bytes_int8=size_int8,
    )
    result.tables.append(
        Table(
            f"int8 quantisation of a {n_params}-parameter MLP",
            ["model", "saved size", "test accuracy", "Δ accuracy"],
            [
                ["fp32", f"{size_fp32 / 1024:.1f} KiB", f"{acc_fp32:.2%}", "-"],
                [
                    "int8 weights (per channel)",
                    f"{size_int8 / 1024:.1f} KiB",
                    f"{acc_w8:.2%}",
                    f"{acc_w8 - acc_fp32:+.2%}",
                ],
                [
                    "int8 weights + int8 activations",
                    f"{size_int8 / 1024:.1f} KiB",
                    f"{acc_w8a8:.2%}",
                    f"{acc_w8a8 - acc_fp32:+.2%}",
                ],
            ],
        )
    )

    def tensor_bytes(state) -> int:
        return sum(t.numel() * t.element_size() for t in state.values())

    raw_ratio = tensor_bytes(teacher.state_dict()) / tensor_bytes(weight_only.state_dict())
    file_ratio = size_fp32 / size_int8
    metrics.update(int8_tensor_bytes_ratio=raw_ratio, int8_file_ratio=file_ratio)
    result.claim(
        "int8 weights make the model ~4x smaller: 1 byte per weight instead of 4, a little "
        "under 4x in tensor bytes (fp32 scales and biases stay), less in the saved file of "
        "this tiny model (torch.save's per-tensor overhead).",
        3.5 < raw_ratio <= 4.0 and 3.0 < file_ratio < raw_ratio,
        f"tensor bytes {raw_ratio:.2f}x smaller; saved file {size_fp32} B -> {size_int8} B: "
        f"{file_ratio:.2f}x",
    )
    result.claim(
        "Accuracy barely moves: int8 weights, and int8 weights with int8 activations, stay "
        "within 1 point of fp32.",
        abs(acc_w8 - acc_fp32) < 0.01 and abs(acc_w8a8 - acc_fp32) < 0.01,
        f"fp32 {acc_fp32:.2%}, int8 weights {acc_w8:.2%}, int8 weights+activations "
        f"{acc_w8a8:.2%} (same prediction as fp32 on {agree:.1%} of the test set)",
    )
    result.claim(
        "Per-channel scales quantise more accurately than one scale per tensor.",
        all(c < t for c, t in zip(err_channel, err_tensor, strict=True)),
        "relative weight error per layer, per channel vs per tensor: "
        + ", ".join(f"{c:.1e} vs {t:.1e}" for c, t in zip(err_channel, err_tensor, strict=True)),
    )

    # ---- (b) magnitude pruning ---------------------------------------------------------------
    # Fine-tuning is extra training: the fair reference is the dense model given the same.
    finetune_steps = ctx.pick(150, 600)
    dense_tuned = _train(copy.deepcopy(teacher), x_train, y_train, finetune_steps, g, lr=1e-3)
    acc_dense_tuned = _accuracy(dense_tuned, x_test, y_test)
    prune_rows = [["0% (dense)", "0%", f"{acc_fp32:.2%}", f"{acc_dense_tuned:.2%}", "0%"]]
    pruned_acc, tuned_acc, pruned_layers = {}, {}, {}
    for amount in (0.5, 0.8, 0.95):
        model = copy.deepcopy(teacher)
        targets = [(m, "weight") for m in model if isinstance(m, torch.nn.Linear)]
        # global: one threshold on |w| across all layers (per-layer l1_unstructured would
        # remove the same fraction from each layer, including the small output layer)
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
        zeros = sum((m.weight == 0).sum().item() for m, _ in targets)
        total = sum(m.weight.numel() for m, _ in targets)
        pruned_acc[amount] = _accuracy(model, x_test, y_test)
        # Fine-tune with the mask in place: weight = weight_orig * weight_mask, so the pruned
        # weights stay zero while the survivors adapt.
        _train(model, x_train, y_train, finetune_steps, g, lr=1e-3)
        tuned_acc[amount] = _accuracy(model, x_test, y_test)
        for m, name in targets:
            prune.remove(m, name)  # make it permanent: a plain weight with zeros in it
        still_zero = sum((m.weight == 0).sum().item() for m, _ in targets)
        prune_rows.append(
            [
                f"{amount:.0%}",
                f"{zeros / total:.1%}",
                f"{pruned_acc[amount]:.2%}",
                f"{tuned_acc[amount]:.2%}",
                f"{still_zero / total:.1%}",
            ]
        )
        pruned_layers[amount] = model[2].weight.detach().clone()  # the 128x128 hidden layer
    metrics.update({f"pruned_{k:.0%}_accuracy": v for k, v in pruned_acc.items()})
    metrics.update({f"pruned_{k:.0%}_finetuned_accuracy": v for k, v in tuned_acc.items()})
    metrics["dense_finetuned_accuracy"] = acc_dense_tuned
    result.tables.append(
        Table(
            "Global magnitude pruning of the Linear weights",
            ["pruned", "weights = 0", "accuracy", f"+ {finetune_steps} steps", "zeros after"],
            prune_rows,
        )
    )
    result.claim(
        "Pruned without retraining, accuracy falls as sparsity grows (50% ≥ 80% ≥ 95%), and at "
        "95% it collapses (over 20 points lost).",
        pruned_acc[0.5] >= pruned_acc[0.8] >= pruned_acc[0.95]
        and acc_fp32 - pruned_acc[0.95] > 0.2,
        f"dense {acc_fp32:.2%}; 50% {pruned_acc[0.5]:.2%}, 80% {pruned_acc[0.8]:.2%}, "
        f"95% {pruned_acc[0.95]:.2%}",
    )
    result.claim(
        "Fine-tuning with the mask kept (prune, then retrain the survivors) brings 50% "
        "sparsity back to within 1.5 points of the dense model given the same extra steps, and "
        "recovers most of the loss at 80%; at 95% this small net stays well below.",
        acc_dense_tuned - tuned_acc[0.5] < 0.015
        and tuned_acc[0.8] - pruned_acc[0.8] > 0.5 * (acc_dense_tuned - pruned_acc[0.8])
        and acc_dense_tuned - tuned_acc[0.95] > 0.05,
        f"after {finetune_steps} more steps: dense {acc_dense_tuned:.2%}, 50% "
        f"{tuned_acc[0.5]:.2%}, 80% {tuned_acc[0.8]:.2%}, 95% {tuned_acc[0.95]:.2%}",
    )

    # Unstructured zeros are still stored and still multiplied.
    size_dense = _saved_bytes(teacher[2].weight.detach().clone())  # (128, 128)
    size_pruned = _saved_bytes(pruned_layers[0.95])
    # COO stores each nonzero's value (4 bytes) and its (row, col) index (2 x 8 bytes)
    size_coo = _saved_bytes(pruned_layers[0.95].to_sparse())
    size_coo_50 = _saved_bytes(pruned_layers[0.5].to_sparse())
    n_mm = 512
    a = torch.randn(n_mm, n_mm, generator=g).to(device)
    w_dense = torch.randn(n_mm, n_mm, generator=g).to(device)
    w_sparse = w_dense * (torch.rand(n_mm, n_mm, generator=g) > 0.95).to(device)  # 95% zeros
    repeats = ctx.pick(15, 40)
    t_dense = _min_time(lambda: a @ w_dense, repeats, device)
    t_sparse = _min_time(lambda: a @ w_sparse, repeats, device)
    metrics.update(
        saved_bytes_layer_dense=size_dense,
        saved_bytes_layer_pruned=size_pruned,
        saved_bytes_layer_sparse_coo=size_coo,
        saved_bytes_layer_sparse_coo_50pct=size_coo_50,
        matmul_seconds_dense=t_dense,
        matmul_seconds_95pct_zeros=t_sparse,
    )
    result.tables.append(
        Table(
            "What 95% unstructured sparsity buys without a sparse format",
            ["", "dense", "95% zeros (dense)", "95% zeros (COO)", "50% zeros (COO)"],
            [
                ["saved size of the 128x128 layer", size_dense, size_pruned, size_coo, size_coo_50],
                [
                    f"{n_mm}x{n_mm} matmul, best of {repeats}",
                    f"{t_dense * 1e3:.2f} ms",
                    f"{t_sparse * 1e3:.2f} ms",
                    "-",
                    "-",
                ],
            ],
        )
    )
    result.claim(
        "Unstructured pruning alone saves neither space nor time: the pruned tensor saves to "
        "the same size, and a dense matmul with 95% zeros runs about as fast as without "
        "(within 2x). A sparse format pays only at high sparsity: COO spends ~20 bytes per "
        "nonzero, so at 50% zeros it is bigger than the dense tensor.",
        size_pruned == size_dense
        and 0.5 < t_sparse / t_dense < 2.0
        and size_coo < size_dense < size_coo_50,
        f"saved: dense {size_dense} B, 95% pruned {size_pruned} B, as COO {size_coo} B; 50% "
        f"pruned as COO {size_coo_50} B; matmul {t_dense * 1e3:.2f} ms vs "
        f"{t_sparse * 1e3:.2f} ms (ratio {t_sparse / t_dense:.2f})",
    )

    # ---- (c) knowledge distillation ----------------------------------------------------------
    # The student (one hidden layer of 32) sees only the first N_TRANSFER training examples.
    x_small, y_small = x_train[:N_TRANSFER], y_train[:N_TRANSFER]
    with torch.no_grad():
        teacher_logits = teacher(x_train)  # (20000, C); the first 500 are the transfer set
    student_seeds = ctx.pick(3, 8)
    student_steps = ctx.pick(300, 800)
    hard, soft, full_data, full_soft = [], [], [], []
    for s in range(student_seeds):
        seed = 1000 * ctx.seed + s
        for accs, x_s, y_s, logits in (
            (hard, x_small, y_small, None),
            (soft, x_small, y_small, teacher_logits[:N_TRANSFER]),
            (full_data, x_train, y_train, None),
            (full_soft, x_train, y_train, teacher_logits),
        ):
            torch.manual_seed(seed)  # the same initial student for every run
            student = _mlp(32, 1).to(device)
            _train(student, x_s, y_s, student_steps, torch.Generator().manual_seed(seed), logits)
            accs.append(_accuracy(student, x_test, y_test))
    gains = [s - h for s, h in zip(soft, hard, strict=True)]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    student_params = sum(p.numel() for p in _mlp(32, 1).parameters())
    metrics.update(
        teacher_accuracy=acc_fp32,
        student_hard_label_accuracy=hard,
        student_distilled_accuracy=soft,
        student_all_data_hard_label_accuracy=full_data,
        student_all_data_distilled_accuracy=full_soft,
        distillation_gain_mean=mean(gains),
        distillation_gain_min=min(gains),
    )
    result.tables.append(
        Table(
            f"Student ({student_params} params) vs teacher ({n_params} params), "
            f"{student_seeds} student seeds",
            ["student trained on", "examples", "test accuracy (mean)", "min", "max"],
            [
                [
                    "hard labels",
                    N_TRANSFER,
                    f"{mean(hard):.2%}",
                    f"{min(hard):.2%}",
                    f"{max(hard):.2%}",
                ],
                [
                    f"teacher's soft targets (T={TEMPERATURE:g})",
                    N_TRANSFER,
                    f"{mean(soft):.2%}",
                    f"{min(soft):.2%}",
                    f"{max(soft):.2%}",
                ],
                [
                    "hard labels",
                    N_TRAIN,
                    f"{mean(full_data):.2%}",
                    f"{min(full_data):.2%}",
                    f"{max(full_data):.2%}",
                ],
                [
                    "teacher's soft targets",
                    N_TRAIN,
                    f"{mean(full_soft):.2%}",
                    f"{min(full_soft):.2%}",
                    f"{max(full_soft):.2%}",
                ],
                ["(the teacher)", N_TRAIN, f"{acc_fp32:.2%}", "", ""],
            ],
        )
    )
    result.claim(
        f"On a {N_TRANSFER}-example transfer set, the student distilled from the teacher's soft "
        "targets beats the same student trained on the hard labels, for every student seed, "
        "by several points on average.",
        min(gains) > 0 and mean(gains) > 0.03,
        f"gain per seed: {', '.join(f'{x:+.1%}' for x in gains)}; mean {mean(gains):+.1%}",
    )
    result.claim(
        "Distillation stands in for data the student lacks; it does not beat data: with all "
        f"{N_TRAIN} labelled examples the hard-label student is at least as good as the one "
        f"distilled from {N_TRANSFER}, and distilling on all {N_TRAIN} adds nothing (within "
        "0.5 points: the teacher's own errors come with its soft targets; these labels are "
        "exact).",
        mean(full_data) >= mean(soft) - 0.005 and mean(full_soft) <= mean(full_data) + 0.005,
        f"mean accuracy: {N_TRANSFER} examples distilled {mean(soft):.2%}; {N_TRAIN} examples: "
        f"hard labels {mean(full_data):.2%}, distilled {mean(full_soft):.2%}; teacher "
        f"{acc_fp32:.2%}",
    )
    return result
