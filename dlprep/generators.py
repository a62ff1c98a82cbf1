"""Parametric numeric questions: named generators that draw fresh numbers at each review.

A question in YAML names a generator (`generator: conv-output-size`) and writes its prompt
as a template over the generator's parameters (`{size}`, `{kernel}`, ...). The code that
draws numbers and computes the answer lives here, in Python, never in YAML.
"""

from __future__ import annotations

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
