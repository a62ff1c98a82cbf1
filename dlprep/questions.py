"""A question as the rest of dlprep sees it: plain immutable data, cheap to build from the cache.

`schema.py` validates YAML with pydantic; the quiz path never imports pydantic (its model
machinery costs more than everything else the first prompt needs), only these records.
They are NamedTuples rather than frozen dataclasses: a frozen dataclass sets each field with
object.__setattr__, which made building 100,000 questions from the cache take 0.21 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple


class Reference(NamedTuple):
    title: str
    url: str


class Question(NamedTuple):
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
        defaults = Question._field_defaults
        data = {}
        for name in Question._fields:
            value = getattr(self, name)
            if name in defaults and value == defaults[name]:
                continue
            data[name] = [r._asdict() for r in value] if name == "references" else value
        return data

    @classmethod
    def to_columns(cls, questions: Sequence[Question]) -> dict[str, list]:
        """Column-wise plain data: one list per field (the bank cache's layout).

        A list per field parses several times faster than a dict per question: 100,000
        questions load in about 0.35 s instead of 1 s (benchmarks/study_loop.py).
        """
        columns = {name: [getattr(q, name) for q in questions] for name in _FIELDS}
        columns["references"] = [[[r.title, r.url] for r in q.references] for q in questions]
        return columns

    @classmethod
    def from_columns(cls, columns: dict[str, list]) -> tuple[Question, ...]:
        columns = dict(columns)
        for name in _TUPLE_FIELDS:
            columns[name] = [tuple(value) for value in columns[name]]
        columns["references"] = [
            tuple(Reference(title, url) for title, url in refs) for refs in columns["references"]
        ]
        return tuple(map(cls, *(columns[name] for name in _FIELDS)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Question:
        """Build from already-validated data (the cache, or a validated schema model)."""
        data = dict(data)
        for name in _TUPLE_FIELDS:
            if name in data:
                data[name] = tuple(data[name])
        if "references" in data:
            data["references"] = tuple(Reference(**r) for r in data["references"])
        return cls(**data)


_FIELDS = list(Question._fields)
_TUPLE_FIELDS = ("key_points", "pitfalls", "follow_ups", "tags", "sources", "choices")
