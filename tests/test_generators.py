"""Parametric numeric questions: generators draw reproducible numbers that fill the shipped
prompts, and conv-output-size agrees with what PyTorch actually computes."""

from __future__ import annotations

import string

import pytest

from dlprep import paths
from dlprep.bank import load_bank
from dlprep.generators import GENERATORS, conv_output_size, draw, receptive_field

SEEDS = range(50)


@pytest.fixture(scope="module")
def shipped_bank():
    return load_bank([paths.builtin_content_dir()])


def test_some_generator_is_registered():
    assert "conv-output-size" in GENERATORS


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_draws_are_deterministic(name):
    for seed in SEEDS:
        first, again = draw(name, seed), draw(name, seed)
        assert first == again
        assert first.generator == name
        assert tuple(first.params) == GENERATORS[name].params
        assert isinstance(first.value, float)
        assert first.working
    # A fresh review gets fresh numbers: different seeds do not all give the same draw.
    assert len({tuple(draw(name, seed).params.values()) for seed in SEEDS}) > 1


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_shipped_prompts_format_with_drawn_params(name, shipped_bank):
    for question in (q for q in shipped_bank.questions if q.generator == name):
        placeholders = {
            f for _, f, _, _ in string.Formatter().parse(question.prompt) if f is not None
        }
        assert placeholders, f"{question.id}: a generated prompt with no placeholders"
        for seed in SEEDS:
            params = draw(name, seed).params
            text = question.prompt.format(**params)
            assert "{" not in text and "}" not in text
            for placeholder in placeholders:
                assert str(params[placeholder]) in text


def test_conv_output_size_matches_torch():
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        for seed in range(200):
            d = draw("conv-output-size", seed)
            p = d.params
            conv = torch.nn.Conv2d(
                1, 1, kernel_size=p["kernel"], stride=p["stride"], padding=p["padding"]
            )
            width = conv(torch.zeros(1, 1, p["size"], p["size"])).shape[-1]
            assert d.value == width, f"seed {seed}: {p} gives {width}, generator says {d.value}"
            assert f"= {width}" in d.working


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [
        (32, 3, 1, 0, 2),
        (32, 3, 1, 2, 2),
        (28, 5, 2, 1, 3),
        (64, 3, 2, 4, 4),
        (17, 2, 3, 0, 5),
        (224, 7, 2, 3, 1),
    ],
)
def test_conv_output_size_with_dilation_matches_torch(size, kernel, stride, padding, dilation):
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        conv = torch.nn.Conv2d(
            1, 1, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation
        )
        width = conv(torch.zeros(1, 1, size, size)).shape[-1]
    assert conv_output_size(size, kernel, stride, padding, dilation) == width


# -- every generator against what PyTorch computes -------------------------------------------
# Each check rebuilds the drawn situation with real torch modules/tensors and reads off the
# number the question asks for; a generator whose formula drifts from torch fails here.

DRAWS = range(60)


def _check_each_draw(name, measure):
    for seed in DRAWS:
        d = draw(name, seed)
        expected = measure(**d.params)
        assert d.value == pytest.approx(expected, rel=1e-9, abs=1e-12), (
            f"{name} seed {seed}: {d.params} gives {expected} in torch, generator says {d.value}"
        )


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_pool_output_size_ceil_matches_torch():
    torch = pytest.importorskip("torch")

    def width(size, kernel, stride):
        pool = torch.nn.MaxPool2d(kernel, stride, ceil_mode=True)
        return pool(torch.zeros(1, 1, size, size)).shape[-1]

    _check_each_draw("pool-output-size-ceil", width)


@pytest.mark.parametrize(("size", "kernel", "stride", "padding"), [(5, 2, 2, 1), (6, 3, 2, 1)])
def test_pool_ceil_drops_a_window_that_starts_in_the_padding(size, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    from dlprep.generators import pool_output_size

    pool = torch.nn.MaxPool2d(kernel, stride, padding=padding, ceil_mode=True)
    assert (
        pool_output_size(size, kernel, stride, padding)
        == pool(torch.zeros(1, 1, size, size)).shape[-1]
    )


def test_conv_transpose_output_size_matches_torch():
    torch = pytest.importorskip("torch")

    def width(size, kernel, stride, padding):
        conv = torch.nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding)
        with torch.no_grad():
            return conv(torch.zeros(1, 1, size, size)).shape[-1]

    _check_each_draw("conv-transpose-output-size", width)


def test_receptive_field_matches_the_gradient_footprint():
    torch = pytest.importorskip("torch")

    def footprint(layers, kernel, stride):
        # All-ones weights: no cancellation, so every input pixel that can reach the first
        # output pixel gets a non-zero gradient, and no other does.
        convs = [torch.nn.Conv2d(1, 1, kernel, stride=stride, bias=False) for _ in range(layers)]
        for conv in convs:
            torch.nn.init.ones_(conv.weight)
        size = receptive_field(layers, kernel, stride) + stride**layers
        x = torch.zeros(1, 1, size, size, requires_grad=True)
        torch.nn.Sequential(*convs)(x)[0, 0, 0, 0].backward()
        return int((x.grad[0, 0, 0] != 0).sum())

    _check_each_draw("receptive-field", footprint)


def test_conv_params_match_torch():
    torch = pytest.importorskip("torch")
    _check_each_draw(
        "conv-params",
        lambda in_channels, out_channels, kernel: _numel(
            torch.nn.Conv2d(in_channels, out_channels, kernel, device="meta")
        ),
    )


def test_mlp_params_match_torch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    _check_each_draw(
        "mlp-params",
        lambda d_in, hidden, d_out: _numel(
            nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))
        ),
    )


@pytest.mark.parametrize(("name", "module"), [("lstm-params", "LSTM"), ("gru-params", "GRU")])
def test_recurrent_params_match_torch(name, module):
    torch = pytest.importorskip("torch")
    layer = getattr(torch.nn, module)
    _check_each_draw(
        name,
        lambda input_size, hidden_size: _numel(layer(input_size, hidden_size, device="meta")),
    )


def test_attention_params_match_torch():
    torch = pytest.importorskip("torch")
    _check_each_draw(
        "attention-params",
        lambda embed_dim, num_heads: _numel(
            torch.nn.MultiheadAttention(embed_dim, num_heads, device="meta")
        ),
    )


def test_matmul_flops_match_torch_flop_counter():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    def flops(m, k, n):
        a = torch.empty(m, k, device="meta")
        b = torch.empty(k, n, device="meta")
        with FlopCounterMode(display=False) as counter:
            a @ b
        return counter.get_total_flops()

    _check_each_draw("matmul-flops", flops)


def test_zero_memory_matches_the_papers_figure():
    # ZeRO (Rajbhandari et al. 2020), Figure 1: a 7.5B model on 64 GPUs with K = 12.
    from dlprep.generators import zero_model_state_gb

    assert zero_model_state_gb(7.5, 64, 0) == pytest.approx(120)
    assert zero_model_state_gb(7.5, 64, 1) == pytest.approx(31.4, abs=0.05)
    assert zero_model_state_gb(7.5, 64, 2) == pytest.approx(16.6, abs=0.05)
    assert zero_model_state_gb(7.5, 64, 3) == pytest.approx(1.88, abs=0.005)


def test_zero_memory_matches_the_tensors_a_rank_holds():
    torch = pytest.importorskip("torch")

    def gigabytes(params_b, gpus, stage):
        # The shards one rank holds, as meta tensors, with psi scaled to 1e9 * params_b
        # elements counted through each dtype's element size.
        psi = int(params_b * 1e9)
        half, full = torch.float16, torch.float32
        shard = {"params": stage >= 3, "grads": stage >= 2, "optimizer": stage >= 1}

        def held(kind):
            return psi // gpus if shard[kind] else psi

        tensors = [
            torch.empty(held("params"), dtype=half, device="meta"),  # fp16 weights
            torch.empty(held("grads"), dtype=half, device="meta"),  # fp16 gradients
            *(torch.empty(held("optimizer"), dtype=full, device="meta") for _ in range(3)),
        ]  # fp32 master weights, Adam momentum and variance
        return sum(t.numel() * t.element_size() for t in tensors) / 1e9

    for seed in DRAWS:
        d = draw("zero-memory", seed)
        assert d.value == pytest.approx(gigabytes(**d.params), rel=1e-6), d.params


def test_kv_cache_memory_matches_the_cache_tensors():
    torch = pytest.importorskip("torch")

    def gib(layers, kv_heads, head_dim, seq_len, batch):
        # What a decoder keeps per layer: keys and values of shape (B, H_kv, T, d) in fp16.
        shape = (batch, kv_heads, seq_len, head_dim)
        cache = [
            (
                torch.empty(shape, dtype=torch.float16, device="meta"),
                torch.empty(shape, dtype=torch.float16, device="meta"),
            )
            for _ in range(layers)
        ]
        return sum(k.nbytes + v.nbytes for k, v in cache) / 2**30

    _check_each_draw("kv-cache-memory", gib)


def _simulated_gpipe_idle_fraction(stages: int, microbatches: int) -> float:
    """Run a GPipe schedule event by event (forward 1 unit, backward 2 units per stage and
    micro-batch, each step starting as soon as its input and its stage are free) and return
    the share of stage-time spent idle."""
    free = [0.0] * stages
    forward_done = [[0.0] * microbatches for _ in range(stages)]
    for j in range(microbatches):
        for s in range(stages):
            start = max(free[s], forward_done[s - 1][j] if s else 0.0)
            forward_done[s][j] = free[s] = start + 1
    backward_done = [[0.0] * microbatches for _ in range(stages)]
    for j in range(microbatches):
        for s in reversed(range(stages)):
            ready = backward_done[s + 1][j] if s + 1 < stages else forward_done[s][-1]
            start = max(free[s], ready)
            backward_done[s][j] = free[s] = start + 2
    span = max(free)
    busy = 3 * microbatches * stages
    return 1 - busy / (span * stages)


def test_pipeline_bubble_matches_a_simulated_schedule():
    _check_each_draw("pipeline-bubble", _simulated_gpipe_idle_fraction)


def test_softmax_prob_matches_torch():
    torch = pytest.importorskip("torch")
    _check_each_draw(
        "softmax-prob",
        lambda a, b, c: torch.softmax(torch.tensor([a, b, c], dtype=torch.float64), 0)[0].item(),
    )


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    _check_each_draw(
        "cross-entropy",
        lambda a, b, c, target: F.cross_entropy(
            torch.tensor([[a, b, c]], dtype=torch.float64), torch.tensor([target])
        ).item(),
    )


def test_at_least_twelve_generators_are_registered_and_used_by_the_shipped_bank(shipped_bank):
    used = {q.generator for q in shipped_bank.questions if q.generator}
    assert len(GENERATORS) >= 12
    assert used == set(GENERATORS), f"generators no question uses: {set(GENERATORS) - used}"
