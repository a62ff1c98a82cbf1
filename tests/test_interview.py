"""`dlprep interview`: the plan ramps from easy to hard across topics within the time; typed
answers are scored by the key points ticked; weak ones become due; a report is written."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from conftest import make_question
from typer.testing import CliRunner

import dlprep.cli.interview as interview_cli
from dlprep import paths
from dlprep.cli import app
from dlprep.interview import MINUTES, parse_ticks, plan
from dlprep.store import Store

runner = CliRunner()


def _q(qid, topic, difficulty, points=4):
    return f"""  - id: {qid}
    prompt: Explain {qid}?
    answer: "{qid} is explained here.\\n\\nMore detail."
    key_points: [{", ".join(f"{qid} point {i}" for i in range(1, points + 1))}]
    pitfalls: [a common mistake about {qid}]
    follow_ups: [What follows from {qid}?]
    difficulty: {difficulty}
    demo: dropout
"""


BANK = (
    "topic: alpha\ntitle: Alpha\nquestions:\n"
    + _q("a-easy", "alpha", "easy")
    + _q("a-mid", "alpha", "medium")
    + _q("a-hard", "alpha", "hard")
    + "  - id: a-pick\n    kind: mcq\n    prompt: Pick?\n    answer: It is x, because.\n"
    "    key_points: [x]\n    choices: [x, y]\n    correct: x\n    difficulty: easy\n"
)
BANK_B = (
    "topic: beta\ntitle: Beta\nquestions:\n"
    + _q("b-easy", "beta", "easy")
    + _q("b-mid", "beta", "medium")
    + _q("b-hard", "beta", "hard")
)


@pytest.fixture
def bank_dir(tmp_path):
    folder = tmp_path / "bank"
    folder.mkdir()
    (folder / "alpha.yaml").write_text(BANK)
    (folder / "beta.yaml").write_text(BANK_B)
    return folder


def test_the_plan_ramps_up_moves_across_topics_and_fits_the_time():
    questions = [
        make_question(f"{t}-{d}-{i}", topic=t, difficulty=d)
        for t in ("cnn", "rnn", "llms")
        for d in MINUTES
        for i in range(4)
    ] + [make_question("pick", kind="mcq", choices=["a", "b"], correct="a", difficulty="easy")]
    for minutes in (10, 30, 60):
        chosen = plan(questions, minutes, random.Random(minutes))
        ranks = [list(MINUTES).index(q.difficulty) for q in chosen]
        assert ranks == sorted(ranks)  # easy, then medium, then hard
        assert all(q.kind == "open" for q in chosen)
        assert sum(MINUTES[q.difficulty] for q in chosen) <= minutes
        assert all(a.topic != b.topic for a, b in zip(chosen, chosen[1:], strict=False)
                   if a.difficulty == b.difficulty)  # fmt: skip
    thirty = plan(questions, 30, random.Random(0))
    assert {q.difficulty for q in thirty} == set(MINUTES)


@pytest.mark.parametrize(
    ("text", "ticked"),
    [("1 3", {0, 2}), ("1,3", {0, 2}), ("2-4", {1, 2, 3}), ("all", {0, 1, 2, 3}),
     ("", set()), ("none", set()), ("5", None), ("x", None), ("3-1", None)],
)  # fmt: skip
def test_ticks_are_parsed_or_refused(text, ticked):
    assert parse_ticks(text, 4) == ticked


def test_an_interview_scores_answers_records_weak_ones_and_writes_a_report(bank_dir, tmp_path):
    report_path = tmp_path / "mock.md"
    # 30 minutes with this bank: one easy, two medium, one hard question. Each: answer
    # lines and an empty line, the ticks, then the follow-up's answer and an empty line.
    keys = (
        "Overfitting means...\nand more\n\nall\nfollow-up answer\n\n"  # 100%
        "I am not sure\n\n1\n\n"  # 25%: weak; an empty follow-up answer
        "x\n\n9\n1 2 3\nfine\n\n"  # a wrong tick first, then 75%
        "no idea\n\nnone\n\n"  # 0%: weak
    )
    result = runner.invoke(
        app,
        ["interview", "--bank", str(bank_dir), "-t", "alpha", "-t", "beta", "--minutes", "30",
         "--seed", "1", "-o", str(report_path)],
        input=keys,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "which did you cover?" in result.output and "Follow-up:" in result.output
    assert "type the numbers of the points you covered (1-4)" in result.output
    assert "score 50%" in result.output and "2 weak answers now due" in result.output
    report = report_path.read_text(encoding="utf-8")
    assert "**Score 50%** of key points covered · 4 of 4 planned questions" in report
    assert report.count("- [x]") == 8 and report.count("- [ ]") == 8
    assert "> Overfitting means..." in report and "## What to review" in report
    assert "run `dlprep demo dropout`" in report

    with Store(paths.database_path()) as store:
        cards = store.cards()
    assert len(cards) == 2  # only the weak answers were recorded, as Again
    assert all(c.state == 1 and c.reps == 1 for c in cards.values())


def test_time_runs_out(bank_dir, tmp_path, monkeypatch):
    clock = iter(datetime(2026, 3, 2, 9, tzinfo=timezone.utc) + timedelta(minutes=9 * i)
                 for i in range(100))  # fmt: skip
    monkeypatch.setattr(interview_cli, "utcnow", lambda: next(clock))
    keys = "answer\n\nall\nmore\n\n" * 4
    result = runner.invoke(
        app, ["interview", "--bank", str(bank_dir), "-t", "alpha", "-t", "beta",
              "--minutes", "30", "--seed", "1", "-o", str(tmp_path / "r.md")], input=keys,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "time is up" in result.output
    assert "of 4 planned questions answered" in (tmp_path / "r.md").read_text()
    assert "4 of 4 planned" not in (tmp_path / "r.md").read_text()


def test_end_of_input_ends_early_and_keeps_what_was_answered(bank_dir):
    result = runner.invoke(
        app,
        ["interview", "--bank", str(bank_dir), "-t", "alpha", "-t", "beta", "--seed", "1"],
        input="my answer\n\n2\n",
    )
    assert result.exit_code == 0, result.output
    reports = list((paths.home() / "interviews").glob("*.md"))
    assert len(reports) == 1
    assert "1 of 4 planned questions answered" in reports[0].read_text()


def test_no_open_questions_is_a_one_line_error(bank_dir):
    (bank_dir / "beta.yaml").unlink()
    (bank_dir / "alpha.yaml").write_text(
        "topic: alpha\ntitle: Alpha\nquestions:\n  - id: a-pick\n    kind: mcq\n"
        "    prompt: Pick?\n    answer: x.\n    key_points: [x]\n    choices: [x, y]\n"
        "    correct: x\n"
    )
    result = runner.invoke(app, ["interview", "--bank", str(bank_dir), "--topic", "alpha"])
    assert result.exit_code == 1
    assert "no open questions" in result.output
