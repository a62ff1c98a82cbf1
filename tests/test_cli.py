"""The CLI in-process (CliRunner): quiz, list, show, stats, export, suspend, undo, config."""

from __future__ import annotations

import json
import sqlite3
import textwrap

import pytest
from typer.testing import CliRunner

from dlprep.cli import app

runner = CliRunner()

BANK = textwrap.dedent(
    """\
    topic: drill
    title: Drill
    questions:
      - id: drill-one
        prompt: First drill question?
        answer: The first answer.
        key_points: [point one]
        demo: backprop-by-hand
      - id: drill-two
        prompt: Second drill question?
        answer: The second answer.
        key_points: [point two]
        tags: [odd]
      - id: drill-mcq
        kind: mcq
        prompt: Pick the right one
        choices: [right, wrong, also wrong]
        correct: right
        answer: Because.
        key_points: [it is right]
    """
)


@pytest.fixture
def bank_file(tmp_path):
    path = tmp_path / "drill.yaml"
    path.write_text(BANK)
    return path


def run(*args, input=None):
    result = runner.invoke(app, [str(a) for a in args], input=input)
    assert "Traceback" not in result.output
    return result


def stats(bank_file):
    result = run("stats", "--json", "--bank", bank_file)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_quiz_saves_each_answer_and_shows_the_answer(bank_file):
    # card 1: type an answer, rate Good (3); card 2: Enter, rate Again (1); then end of input.
    result = run("quiz", "--bank", bank_file, "--topic", "drill", input="my answer\n3\n\n1\n")
    assert result.exit_code == 0, result.output
    assert "The first answer." in result.output and "point one" in result.output
    assert "your answer: my answer" in result.output  # shown beside the model answer
    assert "dlprep demo backprop-by-hand" in result.output
    assert "3 Good (10m)" in result.output  # ratings labelled with their intervals
    assert "Session done: 2 answered" in result.output
    figures = stats(bank_file)
    assert figures["total_reviews"] == 2 and figures["reviewed_cards"] == 2
    assert figures["by_topic"]["drill"]["seen"] == 2
    show = json.loads(run("show", "drill-one", "--json", "--bank", bank_file).stdout)
    assert show["state"] == "learning" and show["reps"] == 1


def test_mcq_is_graded_automatically(bank_file):
    # Only drill-two has the tag "odd".
    result = run("quiz", "--bank", bank_file, "--tag", "odd", input="\n\n")
    assert "Second drill question?" in result.output
    # Pick the mcq only, answer with a made-up letter: wrong, Enter accepts the suggested Again.
    keys = ":s\n:s\nZ\n\n"
    result = run("quiz", "--bank", bank_file, "--topic", "drill", "--new", "3", input=keys)
    assert "✗ not quite" in result.output and "[Enter=Again]" in result.output
    assert "Again — next review in 1m" in result.output


def test_end_of_input_mid_card_saves_what_was_answered(bank_file):
    result = run("quiz", "--bank", bank_file, "--topic", "drill", input="\n4\nhalf an answer\n")
    assert result.exit_code == 0
    assert stats(bank_file)["total_reviews"] == 1


def test_quit_bury_suspend_and_undo_keys(bank_file):
    result = run("quiz", "--bank", bank_file, "--topic", "drill", input="\n3\n:u\n\n4\n:b\n:q\n")
    assert "undid your answer to drill-one" in result.output
    assert "buried until" in result.output
    listed = {
        row["id"]: row["state"]
        for row in json.loads(run("list", "--json", "--topic", "drill", "--bank", bank_file).stdout)
    }
    assert listed == {"drill-one": "review", "drill-two": "new (buried)", "drill-mcq": "new"}
    assert "progress: new (buried)" in run("show", "drill-two", "--bank", bank_file).output
    assert stats(bank_file)["total_reviews"] == 1  # the undone answer does not count


def test_nothing_due_says_when_the_next_card_is(bank_file):
    run("quiz", "--bank", bank_file, "--topic", "drill", input="\n4\n\n4\n\n4\n")
    result = run("quiz", "--bank", bank_file, "--topic", "drill")
    assert result.exit_code == 0
    assert "Nothing due right now." in result.output and "Next card due in" in result.output


def test_cram_leaves_the_schedule_alone(bank_file):
    result = run("quiz", "--cram", "--bank", bank_file, "--topic", "drill", input="\n1\n\n1\n")
    assert "schedule unchanged" in result.output
    assert stats(bank_file)["total_reviews"] == 0


def test_suspend_unsuspend_and_list(bank_file):
    assert run("suspend", "drill-one", "--bank", bank_file).exit_code == 0
    rows = json.loads(run("list", "--json", "--topic", "drill", "--bank", bank_file).stdout)
    assert rows[0]["state"] == "new (suspended)"
    assert run("unsuspend", "drill-one", "--bank", bank_file).exit_code == 0
    rows = json.loads(run("list", "--json", "--topic", "drill", "--bank", bank_file).stdout)
    assert rows[0]["state"] == "new"


def test_undo_command(bank_file):
    run("quiz", "--bank", bank_file, "--topic", "drill", "--limit", "1", input="\n3\n")
    result = run("undo")
    assert "undid the answer to drill-one" in result.output
    assert stats(bank_file)["total_reviews"] == 0
    assert "nothing to undo" in run("undo").output


def test_stats_json_has_the_documented_fields(bank_file):
    figures = stats(bank_file)
    documented = {"total_questions", "reviewed_cards", "total_reviews", "due_now", "by_topic"}
    assert documented <= set(figures)
    assert figures["by_topic"]["drill"]["questions"] == 3


def test_export_markdown(bank_file, tmp_path):
    run("quiz", "--bank", bank_file, "--topic", "drill", input="\n1\n")
    out = tmp_path / "report.md"
    result = run("export", "markdown", "-o", out, "--bank", bank_file)
    assert result.exit_code == 0, result.output
    report = out.read_text()
    assert "| Topic | Questions | Studied | Mastered | Due now |" in report
    assert "| [Drill](#drill) | 3 | 1 | 0 (0%) | 0 |" in report
    assert "`drill-one`: First drill question?" in report
    assert "`dlprep demo backprop-by-hand`" in report
    assert run("export", "markdown", "--bank", bank_file).stdout == report
    only = run("export", "markdown", "--bank", bank_file, "--topic", "nope")
    assert only.exit_code == 1 and "no topic 'nope'" in only.output


def test_editing_a_question_keeps_its_progress_and_removing_it_keeps_history(bank_file):
    run("quiz", "--bank", bank_file, "--topic", "drill", "--limit", "1", input="\n4\n")
    bank_file.write_text(BANK.replace("First drill question?", "First question, reworded?"))
    shown = json.loads(run("show", "drill-one", "--json", "--bank", bank_file).stdout)
    assert shown["prompt"] == "First question, reworded?" and shown["state"] == "review"
    bank_file.write_text(BANK.replace("id: drill-one", "id: drill-renamed"))
    figures = stats(bank_file)
    assert figures["orphans"] == ["drill-one"] and figures["total_reviews"] == 1


def test_config_shows_sets_validates_and_resets():
    assert json.loads(run("config", "--json").stdout)["new_per_day"] == 20
    assert run("config", "new_per_day", "5").exit_code == 0
    assert json.loads(run("config", "new_per_day", "--json").stdout) == {"new_per_day": 5}
    bad = run("config", "desired_retention", "1.5")
    assert bad.exit_code == 1 and "desired_retention" in bad.output
    assert run("config", "colour", "red").exit_code == 1
    assert run("config", "timezone", "Mars/Olympus").exit_code == 1
    run("config", "--reset")
    assert json.loads(run("config", "--json").stdout)["new_per_day"] == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "drill-onee"], "did you mean 'drill-one'"),
        (["quiz", "--topic", "dril"], "no topic 'dril'"),
        (["quiz", "--tag", "nope"], "no tag 'nope'"),
        (["quiz", "--limit", "0"], "--limit"),
        (["quiz", "--frobnicate"], "No such option"),
        (["suspend", "nope"], "no question with id 'nope'"),
        (["list", "--bank", "/does/not/exist.yaml"], "no such file or folder"),
        (["export", "markdown", "-o", "/does/not/exist/r.md"], "cannot write"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(bank_file, args, message):
    extra = [] if "--bank" in args else ["--bank", str(bank_file)]
    result = run(*args, *extra)
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_broken_bank_is_one_line_naming_file_and_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(BANK.replace("correct: right", "correct: nowhere"))
    result = run("quiz", "--bank", broken)
    assert result.exit_code == 1
    assert "broken.yaml:18: questions[2] (drill-mcq).correct" in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_corrupt_database_is_one_line_and_left_untouched(dlprep_home):
    dlprep_home.mkdir(parents=True)
    db = dlprep_home / "progress.db"
    db.write_bytes(b"garbage" * 1000)
    for args in (["quiz"], ["stats"], ["list"]):
        result = run(*args)
        assert result.exit_code == 1 and "not a dlprep database" in result.output
    assert db.read_bytes() == b"garbage" * 1000


def test_no_command_prints_help():
    result = run()
    assert result.exit_code == 0 and "quiz" in result.output


def test_history_is_in_sqlite_under_dlprep_home(bank_file, dlprep_home):
    run("quiz", "--bank", bank_file, "--topic", "drill", "--limit", "1", input="typed\n3\n")
    rows = (
        sqlite3.connect(dlprep_home / "progress.db")
        .execute("SELECT question_id, rating, response, state_before, state_after FROM reviews")
        .fetchall()
    )
    assert rows == [("drill-one", 3, "typed", 0, 1)]
