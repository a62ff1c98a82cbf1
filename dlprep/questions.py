"""A question as the rest of dlprep sees it: plain frozen data, cheap to build from the cache.

`schema.py` validates YAML with pydantic; the quiz path never imports pydantic (its model
machinery costs more than everything else the first prompt needs), only these dataclasses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Reference:
    title: str
    url: str


@dataclass(frozen=True)
class Question:
    id: str
    topic: str
    prompt: str
    answer: str
    key_points: tuple[str, ...]
    kind: str = "open"  # open | mcq | numeric
    pitfalls: tuple[str, ...] = ()
    follow_ups: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    difficulty: str = "medium"  # easy | medium | hard
    sources: tuple[str, ...] = ()  # "<seed file>:<line>"
    demo: str = ""
    references: tuple[Reference, ...] = ()
    choices: tuple[str, ...] = ()  # mcq
    correct: str | None = None  # mcq: the text of the right choice
    value: float | None = None  # numeric, fixed
    generator: str | None = None  # numeric, parametric
    tolerance: float = 0.0
    rel_tolerance: float = 0.0
    unit: str = ""

    @property
    def auto_graded(self) -> bool:
        return self.kind in ("mcq", "numeric")

    def to_dict(self) -> dict[str, Any]:
        """Plain data, leaving out fields that hold their default."""
        defaults = {f.name: f.default for f in fields(self)}
        data = asdict(self)
        return {k: v for k, v in data.items() if k not in defaults or v != defaults[k]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Question:
        """Build from already-validated data (the cache, or a validated schema model)."""
        data = dict(data)
        for name in ("key_points", "pitfalls", "follow_ups", "tags", "sources", "choices"):
            if name in data:
                data[name] = tuple(data[name])
        if "references" in data:
            data["references"] = tuple(Reference(**r) for r in data["references"])
        return cls(**data)
