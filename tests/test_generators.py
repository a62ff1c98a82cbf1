"""Parametric numeric questions: generators draw reproducible numbers that fill the shipped
prompts, and conv-output-size agrees with what PyTorch actually computes."""

from __future__ import annotations

import string

import pytest

from dlprep import paths
from dlprep.bank import load_bank
from dlprep.generators import GENERATORS, conv_output_size, draw

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
