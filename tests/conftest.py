"""Every test gets its own DLPREP_HOME (a fresh progress database and bank cache)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest


@pytest.fixture(autouse=True)
def dlprep_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("DLPREP_HOME", str(home))
    monkeypatch.delenv("DLPREP_BANK", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    return home


T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)  # a Monday, noon UTC


def make_question(qid: str, topic: str = "basics", **fields):
    """A valid open question with only what a test cares about spelled out."""
    from dlprep.questions import Question
    from dlprep.schema import QuestionSpec

    data = dict(
        id=qid,
        topic=topic,
        prompt=f"What is {qid}?",
        answer=f"{qid} is ...",
        key_points=["a point"],
    )
    data.update(fields)
    return Question.from_dict(QuestionSpec(**data).model_dump())


def make_bank(questions):
    from dlprep.bank import Bank

    topics = {}
    for q in questions:
        topics.setdefault(q.topic, q.topic.title())
    return Bank(tuple(questions), topics)
