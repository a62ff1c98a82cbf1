"""`dlprep export json` / `dlprep import json`: a backup restores the same progress, and a bad
file is refused with one line without touching the database."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import T0, make_bank, make_question
from typer.testing import CliRunner

from dlprep import paths
from dlprep.backup import export_json, import_json
from dlprep.cli import app
from dlprep.config import Settings
from dlprep.errors import UsageError
from dlprep.progress import build_progress, progress_json
from dlprep.scheduler import Rating, Scheduler
from dlprep.store import Store

runner = CliRunner()
SCHEDULER = Scheduler(Settings(), enable_fuzzing=False)
BANK = make_bank([make_question(f"q{i}", topic="ab"[i % 2]) for i in range(6)])


def _history(store: Store) -> None:
    """Two weeks of answers, an undone answer, a suspended card and a changed setting."""
    now = T0
    for day in range(14):
        for i in range(6):
            if (day + i) % 3:
                continue
            rating = Rating.Again if (day * i) % 5 == 1 else Rating.Good
            store.apply_review(
                f"q{i}",
                lambda card, r=rating, t=now: SCHEDULER.review(card, r, t),
                now,
                duration_ms=1000 + i,
                response=f"answer ‘{i}’ on day {day}",
                auto_correct=bool(i % 2) if i > 3 else None,
                draw={"size": 32, "kernel": 3} if i == 5 else None,
            )
        now += timedelta(days=1, minutes=7)
    last = store.last_review()
    store.undo(last.id, now)
    store.set_suspended(["q3"], True)
    store.save_settings(Settings(desired_retention=0.85, new_per_day=7))


def _stats(store: Store) -> dict:
    progress = build_progress(store, BANK, store.settings(), T0 + timedelta(days=20))
    return progress_json(progress)


def test_export_then_import_into_an_empty_home_gives_identical_progress(tmp_path):
    with Store(tmp_path / "a.db") as original:
        _history(original)
        text = export_json(original, T0)
        tables, stats = original.dump(), _stats(original)
    with Store(tmp_path / "b.db") as restored:
        import_json(restored, text, "backup.json")
        assert restored.dump() == tables
        assert _stats(restored) == stats
        # the restored log is still append-only and undo marks still count
        assert restored.review_count() == len(tables["reviews"]) - 1


def test_the_cli_round_trip_writes_a_file_and_reads_it_back(tmp_path, monkeypatch):
    with Store(paths.database_path()) as store:
        _history(store)
        before = store.dump()
    backup = tmp_path / "backup.json"
    result = runner.invoke(app, ["export", "json", "-o", str(backup)])
    assert result.exit_code == 0, result.output
    assert json.loads(backup.read_text(encoding="utf-8"))["format"] == "dlprep-progress"

    monkeypatch.setenv("DLPREP_HOME", str(tmp_path / "fresh"))
    result = runner.invoke(app, ["import", "json", str(backup)])
    assert result.exit_code == 0, result.output
    assert f"imported {len(before['reviews'])} reviews" in result.output
    with Store(paths.database_path()) as store:
        assert store.dump() == before


def test_import_into_a_home_with_progress_is_refused_and_changes_nothing(tmp_path):
    with Store(tmp_path / "a.db") as store:
        _history(store)
        text = export_json(store, T0)
    with Store(tmp_path / "b.db") as store:
        store.save_settings(Settings(new_per_day=3))
        before = store.dump()
        with pytest.raises(Exception, match="already holds progress"):
            import_json(store, text, "backup.json")
        assert store.dump() == before


def _valid_document(tmp_path) -> dict:
    with Store(tmp_path / "src.db") as store:
        _history(store)
        return json.loads(export_json(store, T0))


def _break(doc: dict, how: str) -> str:
    if how == "truncated":
        return json.dumps(doc)[:-40]
    if how == "not-a-backup":
        return json.dumps({"cards": []})
    if how == "future-version":
        doc["version"] = 2
    elif how == "bad-rating":
        doc["reviews"][3]["rating"] = 5
    elif how == "bad-time":
        doc["reviews"][0]["reviewed_at"] = "yesterday"
    elif how == "naive-time":
        doc["cards"][0]["due"] = "2026-03-02T12:00:00"
    elif how == "dangling-undo":
        doc["undone"].append({"review_id": 99999, "undone_at": doc["undone"][0]["undone_at"]})
    elif how == "duplicate-review":
        doc["reviews"].append(dict(doc["reviews"][0]))
    elif how == "bad-snapshot":
        doc["reviews"][1]["card_before"] = "{not json"
    elif how == "extra-field":
        doc["cards"][0]["mood"] = "great"
    elif how == "string-for-number":
        doc["cards"][0]["reps"] = "3"
    elif how == "newer-schema":
        doc["schema"] = 99
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "not JSON"),
        ("not-a-backup", "not a dlprep progress backup"),
        ("future-version", "format version 2"),
        ("bad-rating", "reviews.3.rating"),
        ("bad-time", "not an ISO 8601 time"),
        ("naive-time", "has no time zone"),
        ("dangling-undo", "review 99999 is not in the file"),
        ("duplicate-review", "review id 1 appears twice"),
        ("bad-snapshot", "is not JSON"),
        ("extra-field", "cards.0.mood"),
        ("string-for-number", "cards.0.reps"),
        ("newer-schema", "newer dlprep"),
    ],
)
def test_a_malformed_backup_is_refused_in_one_line_and_writes_nothing(tmp_path, how, message):
    text = _break(_valid_document(tmp_path), how)
    with Store(tmp_path / "target.db") as store:
        before = store.dump()
        with pytest.raises(UsageError) as caught:
            import_json(store, text, "backup.json")
        assert store.dump() == before
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("backup.json: ")


def test_the_cli_reports_a_missing_or_bad_file_in_one_line(tmp_path):
    result = runner.invoke(app, ["import", "json", str(tmp_path / "nope.json")])
    assert result.exit_code == 1
    assert "cannot read" in result.output and len(result.output.strip().splitlines()) == 1
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2", encoding="utf-8")
    result = runner.invoke(app, ["import", "json", str(bad)])
    assert result.exit_code == 1
    assert "not JSON" in result.output and len(result.output.strip().splitlines()) == 1
