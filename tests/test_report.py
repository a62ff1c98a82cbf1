"""`dlprep export markdown`: the whole report from a fixed review history, compared with a
golden file (regenerate with DLPREP_UPDATE_GOLDEN=1 after a deliberate change)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import make_bank, make_question

from dlprep.config import Settings
from dlprep.export import markdown_report
from dlprep.progress import build_progress
from dlprep.scheduler import Rating, Scheduler
from dlprep.store import Store

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = Settings(timezone="UTC")
SCHEDULER = Scheduler(SETTINGS, enable_fuzzing=False)
START = datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc)
NOW = START + timedelta(days=45, hours=3)


def fixed_bank():
    questions = [
        make_question(
            f"{topic}-{i}",
            topic=topic,
            prompt=f"Question {i} about {topic} | with a pipe?",
            demo="dropout" if i % 2 else "",
        )
        for topic in ("cnn", "rnn")
        for i in range(5)
    ]
    return make_bank(questions)


def fixed_history(store: Store) -> None:
    """45 days: two new cards a day until the bank is seen, then what is due, on most days;
    a fixed pattern of ratings (every seventh answer forgotten)."""
    answers = 0
    for day in range(45):
        if day % 6 == 5:
            continue  # a day off now and then
        now = START + timedelta(days=day)
        due = [c.question_id for c in store.due_cards(now, now, now + timedelta(hours=12))]
        new = [q.id for q in fixed_bank().questions if store.card(q.id).is_new][:2]
        for qid in due + new:
            answers += 1
            rating = Rating.Again if answers % 7 == 0 else Rating.Good
            store.apply_review(qid, lambda c, r=rating, t=now: SCHEDULER.review(c, r, t), now)
            now += timedelta(minutes=2)


@pytest.fixture
def report(tmp_path) -> str:
    bank = fixed_bank()
    with Store(tmp_path / "p.db") as store:
        fixed_history(store)
        progress = build_progress(store, bank, SETTINGS, NOW, days=14, retention_days=30)
    return markdown_report(progress, bank)


def _compare(text: str, name: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("DLPREP_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_report_matches_the_golden_file(report):
    _compare(report, "report.md")


def test_topic_filter_keeps_only_that_topics_sections(tmp_path):
    bank = fixed_bank()
    with Store(tmp_path / "p.db") as store:
        fixed_history(store)
        progress = build_progress(store, bank, SETTINGS, NOW)
    text = markdown_report(progress, bank, topics=["rnn"])
    _compare(text, "report-rnn.md")
    assert "## Rnn" in text and "## Cnn" not in text


def test_report_has_the_sections_and_charts_github_renders(report):
    for heading in ("## Retention", "## By topic", "## Weakest questions", "## Coming up",
                    "## Activity", "## Cnn", "## Rnn"):  # fmt: skip
        assert f"\n{heading}" in report
    assert report.count("```mermaid\nxychart-beta") == 2
    assert "](#cnn)" in report  # the topic table links to the topic's section
    assert "\\|" in report  # pipes in prompts are escaped inside tables
