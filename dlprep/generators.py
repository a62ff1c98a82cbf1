"""Parametric numeric questions: named generators that draw fresh numbers at each review.

A question in YAML names a generator (`generator: conv-output-size`) and writes its prompt
as a template over the generator's parameters (`{size}`, `{kernel}`, ...). The code that
draws numbers and computes the answer lives here, in Python, never in YAML.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

Number = int | float


@dataclass(frozen=True)
class Draw:
    """One instance of a parametric question: the numbers shown and the answer they give."""

    generator: str
    params: dict[str, Number]
    value: float
    working: str  # how the answer follows from these numbers, shown after answering


@dataclass(frozen=True)
class Generator:
    name: str
    params: tuple[str, ...]
    summary: str
    draw_fn: Callable[[random.Random], tuple[dict[str, Number], float, str]] = field(repr=False)

    def draw(self, rng: random.Random) -> Draw:
        params, value, working = self.draw_fn(rng)
        return Draw(self.name, params, float(value), working)


GENERATORS: dict[str, Generator] = {}


def generator(name: str, params: tuple[str, ...], summary: str):
    """Register a draw function under `name`; it returns (params, value, working)."""

    def register(fn: Callable[[random.Random], tuple[dict[str, Number], float, str]]):
        GENERATORS[name] = Generator(name, params, summary, fn)
        return fn

    return register


def draw(name: str, seed: int) -> Draw:
    """Draw an instance of generator `name`; the same seed always gives the same numbers."""
    return GENERATORS[name].draw(random.Random(seed))


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution along one axis, as torch.nn.Conv2d documents it."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@generator(
    "conv-output-size",
    params=("size", "kernel", "stride", "padding"),
    summary="Output width of a Conv2d from input size, kernel, stride and padding.",
)
def _conv_output_size(rng: random.Random):
    kernel = rng.choice([1, 3, 3, 5, 7, 11])
    stride = rng.choice([1, 1, 2, 2, 3, 4])
    padding = rng.randint(0, kernel // 2 + 1)
    size = rng.randint(max(kernel, 7), 227)
    out = conv_output_size(size, kernel, stride, padding)
    working = (
        f"floor(({size} + 2·{padding} − {kernel}) / {stride}) + 1 = "
        f"floor({size + 2 * padding - kernel} / {stride}) + 1 = {out}"
    )
    return {"size": size, "kernel": kernel, "stride": stride, "padding": padding}, out, working


# -- layer sizes -----------------------------------------------------------------------------


def pool_output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output length of nn.MaxPool2d with ceil_mode=True (the PyTorch docs' formula): round up,
    but a last window that would start inside the right padding is dropped."""
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


@generator(
    "pool-output-size-ceil",
    params=("size", "kernel", "stride"),
    summary="Output width of MaxPool2d(ceil_mode=True): rounding up instead of down.",
)
def _pool_output_size_ceil(rng: random.Random):
    kernel = rng.choice([2, 3, 3, 5])
    stride = rng.choice([2, 2, 3]) if kernel > 2 else 2
    size = rng.randint(kernel + 1, 120)
    out = pool_output_size(size, kernel, stride)
    floor_out = (size - kernel) // stride + 1
    working = (
        f"ceil(({size} − {kernel}) / {stride}) + 1 = ceil({size - kernel}/{stride}) + 1 = {out}"
        f" (ceil_mode=False would give floor(...) + 1 = {floor_out})"
    )
    return {"size": size, "kernel": kernel, "stride": stride}, out, working


def conv_transpose_output_size(
    size: int, kernel: int, stride: int, padding: int = 0, output_padding: int = 0
) -> int:
    """Output length of nn.ConvTranspose2d (dilation 1): the inverse of conv's size map."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


@generator(
    "conv-transpose-output-size",
    params=("size", "kernel", "stride", "padding"),
    summary="Output width of a ConvTranspose2d (an upsampling layer) from its hyperparameters.",
)
def _conv_transpose_output_size(rng: random.Random):
    kernel = rng.choice([2, 3, 4, 4, 5])
    stride = rng.choice([1, 2, 2, 3])
    padding = rng.randint(0, (kernel - 1) // 2)
    size = rng.randint(2, 64)
    out = conv_transpose_output_size(size, kernel, stride, padding)
    working = (
        f"({size} − 1)·{stride} − 2·{padding} + {kernel} = "
        f"{(size - 1) * stride} − {2 * padding} + {kernel} = {out}"
    )
    return {"size": size, "kernel": kernel, "stride": stride, "padding": padding}, out, working


def receptive_field(layers: int, kernel: int, stride: int) -> int:
    """Receptive field of `layers` stacked convs, each kernel×kernel with the same stride:
    every layer adds (kernel − 1) times the product of the strides below it."""
    field_size, jump = 1, 1
    for _ in range(layers):
        field_size += (kernel - 1) * jump
        jump *= stride
    return field_size


@generator(
    "receptive-field",
    params=("layers", "kernel", "stride"),
    summary="Receptive field of a stack of identical conv layers.",
)
def _receptive_field(rng: random.Random):
    layers = rng.randint(2, 6)
    kernel = rng.choice([3, 3, 5])
    stride = rng.choice([1, 1, 2])
    rf = receptive_field(layers, kernel, stride)
    jumps = " + ".join(f"{kernel - 1}·{stride**i}" for i in range(layers))
    working = f"r = 1 + Σ (k − 1)·(product of earlier strides) = 1 + {jumps} = {rf}"
    return {"layers": layers, "kernel": kernel, "stride": stride}, rf, working


# -- parameter counts ------------------------------------------------------------------------


def conv_params(in_channels: int, out_channels: int, kernel: int, bias: bool = True) -> int:
    return out_channels * in_channels * kernel * kernel + (out_channels if bias else 0)


@generator(
    "conv-params",
    params=("in_channels", "out_channels", "kernel"),
    summary="Learnable parameters of an nn.Conv2d (weights plus bias).",
)
def _conv_params(rng: random.Random):
    in_channels = rng.choice([1, 3, 16, 32, 64, 128, 256])
    out_channels = rng.choice([8, 16, 32, 64, 128, 256, 512])
    kernel = rng.choice([1, 3, 3, 5, 7])
    n = conv_params(in_channels, out_channels, kernel)
    working = (
        f"{out_channels}·{in_channels}·{kernel}·{kernel} weights + {out_channels} biases = "
        f"{n - out_channels:,} + {out_channels} = {n:,}"
    )
    return {"in_channels": in_channels, "out_channels": out_channels, "kernel": kernel}, n, working


def mlp_params(sizes: tuple[int, ...]) -> int:
    """Parameters of Linear layers between consecutive sizes (each with a bias)."""
    return sum(a * b + b for a, b in zip(sizes, sizes[1:], strict=False))


@generator(
    "mlp-params",
    params=("d_in", "hidden", "d_out"),
    summary="Parameters of a two-layer MLP: Linear(d_in, hidden) → ReLU → Linear(hidden, d_out).",
)
def _mlp_params(rng: random.Random):
    d_in = rng.choice([2, 10, 64, 100, 784, 1024])
    hidden = rng.choice([16, 32, 64, 128, 256, 512])
    d_out = rng.choice([1, 2, 10, 100])
    n = mlp_params((d_in, hidden, d_out))
    working = (
        f"({d_in}·{hidden} + {hidden}) + ({hidden}·{d_out} + {d_out}) = "
        f"{d_in * hidden + hidden:,} + {hidden * d_out + d_out:,} = {n:,} (ReLU has none)"
    )
    return {"d_in": d_in, "hidden": hidden, "d_out": d_out}, n, working


def recurrent_params(gates: int, input_size: int, hidden_size: int) -> int:
    """One layer of nn.RNN (1 gate), nn.GRU (3) or nn.LSTM (4): for every gate an input
    matrix, a hidden matrix and PyTorch's two bias vectors (b_ih and b_hh)."""
    return gates * (hidden_size * input_size + hidden_size * hidden_size + 2 * hidden_size)


def _recurrent(gates: int, name: str):
    def draw_fn(rng: random.Random):
        input_size = rng.choice([8, 16, 32, 50, 64, 100, 128, 300])
        hidden_size = rng.choice([16, 32, 64, 100, 128, 256])
        n = recurrent_params(gates, input_size, hidden_size)
        x, h = input_size, hidden_size
        working = (
            f"{gates} {name} blocks × (W_ih {h}·{x} + W_hh {h}·{h} + b_ih {h} + b_hh {h}) = "
            f"{gates} × {h * x + h * h + 2 * h:,} = {n:,}"
        )
        return {"input_size": input_size, "hidden_size": hidden_size}, n, working

    return draw_fn


generator(
    "lstm-params",
    params=("input_size", "hidden_size"),
    summary="Parameters of a one-layer nn.LSTM: 4 gates, each with two biases in PyTorch.",
)(_recurrent(4, "gate"))
generator(
    "gru-params",
    params=("input_size", "hidden_size"),
    summary="Parameters of a one-layer nn.GRU: 3 gates, each with two biases in PyTorch.",
)(_recurrent(3, "gate"))


def attention_params(embed_dim: int) -> int:
    """nn.MultiheadAttention with bias: Q, K, V and output projections, each E×E + E. The
    number of heads only splits E; it adds no parameters."""
    return 4 * embed_dim * embed_dim + 4 * embed_dim


@generator(
    "attention-params",
    params=("embed_dim", "num_heads"),
    summary="Parameters of nn.MultiheadAttention (independent of the number of heads).",
)
def _attention_params(rng: random.Random):
    num_heads = rng.choice([2, 4, 8, 12, 16])
    embed_dim = num_heads * rng.choice([16, 32, 64])
    n = attention_params(embed_dim)
    e = embed_dim
    working = (
        f"4 projections (Q, K, V, out) × ({e}·{e} + {e}) = 4 × {e * e + e:,} = {n:,}; "
        f"the {num_heads} heads only split the {e} dimensions into {num_heads} × {e // num_heads}"
    )
    return {"embed_dim": embed_dim, "num_heads": num_heads}, n, working


# -- compute and memory ----------------------------------------------------------------------


@generator(
    "matmul-flops",
    params=("m", "k", "n"),
    summary="FLOPs of an (m×k)·(k×n) matrix product: 2mkn (a multiply and an add each).",
)
def _matmul_flops(rng: random.Random):
    m, k, n = (rng.choice([64, 128, 256, 512, 768, 1024, 4096]) for _ in range(3))
    flops = 2 * m * k * n
    working = (
        f"m·n = {m * n:,} outputs, each a dot product of length k = {k}: "
        f"{k} multiplies + {k} adds (counting the first add into zero) → "
        f"2·{m}·{k}·{n} = {flops:,} = {flops / 1e9:.3g} GFLOPs"
    )
    return {"m": m, "k": k, "n": n}, flops, working


ZERO_BYTES = {
    # Mixed-precision Adam (ZeRO paper, §3.1): fp16 parameters (2 bytes), fp16 gradients (2),
    # and K = 12 bytes of fp32 optimiser state (master weights, momentum, variance).
    # Stage 1 shards the optimiser state, 2 also the gradients, 3 also the parameters.
    0: lambda gpus: 2 + 2 + 12,
    1: lambda gpus: 2 + 2 + 12 / gpus,
    2: lambda gpus: 2 + (2 + 12) / gpus,
    3: lambda gpus: (2 + 2 + 12) / gpus,
}


def zero_model_state_gb(params_billion: float, gpus: int, stage: int) -> float:
    """Model-state memory per GPU in GB (1e9 bytes) under ZeRO stage 0-3 (0 = plain DDP)."""
    return params_billion * ZERO_BYTES[stage](gpus)


@generator(
    "zero-memory",
    params=("params_b", "gpus", "stage"),
    summary="Model-state memory per GPU under ZeRO-1/2/3 with mixed-precision Adam.",
)
def _zero_memory(rng: random.Random):
    params_b = rng.choice([1, 1.5, 3, 7, 7.5, 13, 30, 70])
    gpus = rng.choice([4, 8, 16, 32, 64, 128])
    stage = rng.choice([1, 2, 3])
    gb = zero_model_state_gb(params_b, gpus, stage)
    shape = {1: "2Ψ + 2Ψ + 12Ψ/N", 2: "2Ψ + 14Ψ/N", 3: "16Ψ/N"}[stage]
    working = (
        f"ZeRO-{stage} keeps {shape} bytes per GPU with Ψ = {params_b}e9 parameters and "
        f"N = {gpus}: {gb:.4g} GB (plain data parallelism: 16Ψ = {16 * params_b:g} GB)"
    )
    return {"params_b": params_b, "gpus": gpus, "stage": stage}, gb, working


def kv_cache_bytes(
    layers: int, kv_heads: int, head_dim: int, seq_len: int, batch: int, bytes_per: int = 2
) -> int:
    """A decoder's KV cache: a key and a value vector per layer, KV head and token."""
    return 2 * layers * kv_heads * head_dim * seq_len * batch * bytes_per


@generator(
    "kv-cache-memory",
    params=("layers", "kv_heads", "head_dim", "seq_len", "batch"),
    summary="Memory of a transformer decoder's KV cache in fp16, in GiB.",
)
def _kv_cache_memory(rng: random.Random):
    layers = rng.choice([12, 24, 32, 40, 80])
    kv_heads = rng.choice([1, 8, 8, 32, 64])
    head_dim = rng.choice([64, 128])
    seq_len = rng.choice([1024, 2048, 4096, 8192, 32768])
    batch = rng.choice([1, 4, 8, 16, 32])
    n = kv_cache_bytes(layers, kv_heads, head_dim, seq_len, batch)
    gib = n / 2**30
    working = (
        f"2 (K and V) · {layers} layers · {kv_heads} KV heads · {head_dim} dims · {seq_len} "
        f"tokens · batch {batch} · 2 bytes = {n:,} bytes = {gib:.4g} GiB"
    )
    params = {
        "layers": layers,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "seq_len": seq_len,
        "batch": batch,
    }
    return params, gib, working


def pipeline_bubble(stages: int, microbatches: int) -> float:
    """Idle fraction of a GPipe or 1F1B pipeline with equal stage times: (p − 1)/(m + p − 1)."""
    return (stages - 1) / (microbatches + stages - 1)


@generator(
    "pipeline-bubble",
    params=("stages", "microbatches"),
    summary="Idle (bubble) fraction of a GPipe/1F1B pipeline schedule.",
)
def _pipeline_bubble(rng: random.Random):
    stages = rng.choice([2, 4, 4, 8, 16])
    microbatches = rng.choice([1, 2, 4, 8, 16, 32, 64])
    frac = pipeline_bubble(stages, microbatches)
    p, m = stages, microbatches
    working = f"(p − 1)/(m + p − 1) = {p - 1}/({m} + {p - 1}) = {p - 1}/{m + p - 1} = {frac:.4f}"
    return {"stages": stages, "microbatches": microbatches}, frac, working


# -- probabilities and losses ----------------------------------------------------------------


def _logits(rng: random.Random) -> tuple[float, float, float]:
    # + 0.0 turns a rounded -0.0 into 0.0, so a prompt never shows "-0.0".
    return tuple(round(rng.uniform(-3, 4), 1) + 0.0 for _ in range(3))  # type: ignore[return-value]


def _term(x: float) -> str:
    """A number as it reads inside a formula: negatives in brackets, "−" as the minus sign."""
    return f"(−{-x:g})" if x < 0 else f"{x:g}"


def softmax(logits: tuple[float, ...]) -> list[float]:
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


@generator(
    "softmax-prob",
    params=("a", "b", "c"),
    summary="The softmax probability of the first of three logits.",
)
def _softmax_prob(rng: random.Random):
    a, b, c = _logits(rng)
    p = softmax((a, b, c))[0]
    ta, tb, tc = _term(a), _term(b), _term(c)
    working = (
        f"e^{ta} / (e^{ta} + e^{tb} + e^{tc}) = 1 / (1 + e^({tb} − {ta}) + e^({tc} − {ta}))"
        f" = {p:.4g}"
    )
    return {"a": a, "b": b, "c": c}, p, working


@generator(
    "cross-entropy",
    params=("a", "b", "c", "target"),
    summary="Cross-entropy loss of three logits for a given target class (natural log).",
)
def _cross_entropy(rng: random.Random):
    a, b, c = _logits(rng)
    target = rng.randint(0, 2)
    z = (a, b, c)[target]
    top = max(a, b, c)
    lse = top + math.log(sum(math.exp(v - top) for v in (a, b, c)))
    loss = lse - z
    working = (
        f"−log softmax_{target} = logsumexp({a:g}, {b:g}, {c:g}) − z_{target} = "
        f"{lse:.5f} − {_term(z)} = {loss:.4g}"
    )
    return {"a": a, "b": b, "c": c, "target": target}, loss, working
