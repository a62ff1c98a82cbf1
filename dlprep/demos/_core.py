"""What every demo shares: the context it runs in and the result it returns, as plain data.

No torch here: the CLI imports this module to render results and list demos.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DemoContext:
    device: str  # "cpu" or "cuda"; demos pass it to torch.device(...)
    seed: int
    quick: bool  # the test suite's mode: a few seconds on a 2-core CPU

    def pick(self, quick: Any, full: Any) -> Any:
        """`quick` in quick mode, else `full` (step counts, sizes, repeats)."""
        return quick if self.quick else full


@dataclass
class Claim:
    text: str  # a sentence a learner could say in an interview
    holds: bool
    detail: str = ""  # the measured numbers behind the verdict


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Curve:
    """Series of y values over a shared x (steps, layers, ...), drawn as sparklines."""

    title: str
    x_label: str
    series: dict[str, list[float]]
    log_y: bool = False


@dataclass
class DemoResult:
    metrics: dict[str, Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what really happens, caveats

    def claim(self, text: str, holds: bool, detail: str = "") -> bool:
        self.claims.append(Claim(text, bool(holds), detail))
        return bool(holds)

    @property
    def all_hold(self) -> bool:
        return bool(self.claims) and all(c.holds for c in self.claims)


@dataclass
class DemoReport:
    demo: str
    device: str
    seed: int
    quick: bool
    seconds: float
    result: DemoResult

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "demo": self.demo,
            "device": self.device,
            "seed": self.seed,
            "quick": self.quick,
            "seconds": round(self.seconds, 3),
            "metrics": _plain(r.metrics),
            "claims": [asdict(c) for c in r.claims],
            "tables": [asdict(t) for t in r.tables],
            "curves": [asdict(c) for c in r.curves],
            "notes": r.notes,
        }


def _plain(value: Any) -> Any:
    """JSON-safe: floats stay floats (NaN/inf as strings), containers recurse."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)
