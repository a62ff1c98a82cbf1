"""The question-bank schema: what a topic file may contain (docs/bank-format.md).

Used to validate YAML; validated questions become `dlprep.questions.Question` dataclasses.
"""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from dlprep.generators import GENERATORS

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=80)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Kind = Literal["open", "mcq", "numeric"]
Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")
# "<seed file>:<line>", e.g. "000_6bf5bb067515d57f.txt:41"
Source = Annotated[str, StringConstraints(pattern=r"^[^\s:]+:[1-9]\d*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferenceSpec(_Strict):
    title: Text
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]


class QuestionSpec(_Strict):
    id: Slug
    kind: Kind = "open"
    topic: Slug
    prompt: Text
    answer: Text
    key_points: list[Text] = Field(min_length=1, max_length=8)
    pitfalls: list[Text] = []
    follow_ups: list[Text] = []
    tags: list[Slug] = []
    difficulty: Difficulty = "medium"
    sources: list[Source] = []
    demo: Slug | Literal[""] = ""
    references: list[ReferenceSpec] = []
    # mcq: the choices, and the text of the one correct choice
    choices: list[Text] = []
    correct: Text | None = None
    # numeric: a fixed `value`, or a `generator` that draws parameters for the prompt template
    value: float | None = None
    generator: str | None = None
    tolerance: float = Field(0.0, ge=0)
    rel_tolerance: float = Field(0.0, ge=0, lt=1)
    unit: str = ""

    @field_validator("choices")
    @classmethod
    def _choices_unique(cls, choices: list[str]) -> list[str]:
        if len(set(choices)) != len(choices):
            raise ValueError("choices must be different from each other")
        return choices

    @field_validator("correct")
    @classmethod
    def _correct_is_a_choice(cls, correct: str | None, info) -> str | None:
        choices = info.data.get("choices")
        if correct is not None and choices and correct not in choices:
            raise ValueError(f"{correct!r} is not one of the choices")
        return correct

    @field_validator("generator")
    @classmethod
    def _generator_fits_prompt(cls, name: str | None, info) -> str | None:
        if name is None:
            return None
        if name not in GENERATORS:
            known = ", ".join(sorted(GENERATORS))
            raise ValueError(f"unknown generator {name!r} (known: {known})")
        prompt = info.data.get("prompt", "")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(prompt) if f is not None}
        except ValueError as exc:
            raise ValueError(f"prompt is not a valid template: {exc}") from None
        unknown = fields - set(GENERATORS[name].params)
        if unknown:
            raise ValueError(
                f"prompt uses {sorted(unknown)} but {name} provides {list(GENERATORS[name].params)}"
            )
        return name

    @model_validator(mode="after")
    def _fields_match_kind(self) -> QuestionSpec:
        mcq_fields = bool(self.choices) or self.correct is not None
        numeric_fields = self.value is not None or self.generator is not None or bool(self.unit)
        if self.kind == "mcq":
            if not 2 <= len(self.choices) <= 8:
                raise ValueError("choices: an mcq question needs 2 to 8 choices")
            if self.correct is None:
                raise ValueError("correct: an mcq question needs the text of its correct choice")
        elif mcq_fields:
            raise ValueError(f"choices: only mcq questions have choices (kind is {self.kind!r})")
        if self.kind == "numeric":
            if (self.value is None) == (self.generator is None):
                raise ValueError(
                    "value: a numeric question needs exactly one of value or generator"
                )
        elif numeric_fields:
            raise ValueError(
                "value: only numeric questions have value, generator or unit "
                f"(kind is {self.kind!r})"
            )
        return self


class TopicFile(_Strict):
    """One YAML file: a topic and its questions."""

    topic: Slug
    title: Text
    description: str = ""
    # Where the topic comes in a study plan: new cards are introduced in ascending `order`
    # (then by file name), so fundamentals come before the topics built on them.
    order: int = Field(100, ge=0)
    questions: list[QuestionSpec] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _questions_inherit_topic(cls, data):
        """A question's topic is its file's; writing it again is allowed only if it agrees."""
        if isinstance(data, dict) and isinstance(data.get("questions"), list):
            topic = data.get("topic")
            data = {
                **data,
                "questions": [
                    {"topic": topic, **q} if isinstance(q, dict) else q for q in data["questions"]
                ],
            }
        return data

    @field_validator("questions")
    @classmethod
    def _same_topic(cls, questions: list[QuestionSpec], info) -> list[QuestionSpec]:
        topic = info.data.get("topic")
        for question in questions:
            if topic is not None and question.topic != topic:
                raise ValueError(
                    f"question {question.id!r} has topic {question.topic!r} "
                    f"in a file of topic {topic!r}"
                )
        return questions
