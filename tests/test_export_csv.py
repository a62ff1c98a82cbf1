"""`dlprep export csv`: one row per question, with its state, for spreadsheets."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from conftest import T0, make_bank, make_question

from dlprep.config import Settings
from dlprep.export import CSV_COLUMNS, csv_rows, csv_text
from dlprep.scheduler import Rating, Scheduler
from dlprep.store import Store

SCHEDULER = Scheduler(Settings(), enable_fuzzing=False)


def test_every_question_gets_a_row_with_its_state_and_predicted_recall(tmp_path):
    tricky = 'Why, "exactly", does it\nwork?'
    bank = make_bank(
        [make_question("seen"), make_question("failed"), make_question("fresh", prompt=tricky)]
    )
    with Store(tmp_path / "p.db") as store:
        for qid, rating in (("seen", Rating.Good), ("failed", Rating.Again)):
            store.apply_review(qid, lambda c, r=rating: SCHEDULER.review(c, r, T0), T0)
        store.set_suspended(["fresh"], True)
        rows = csv_rows(
            bank, store.cards(), store.last_ratings(), SCHEDULER, T0 + timedelta(days=3)
        )
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert [r["id"] for r in parsed] == ["seen", "failed", "fresh"]
    assert tuple(parsed[0]) == CSV_COLUMNS
    seen, failed, fresh = parsed
    assert (seen["state"], seen["last_rating"], seen["reps"]) == ("learning", "3", "1")
    assert 0 < float(seen["recall_now"]) < 1  # FSRS forgets over whole days
    assert failed["last_rating"] == "1"
    assert float(failed["recall_now"]) < float(seen["recall_now"])
    assert (fresh["state"], fresh["recall_now"], fresh["suspended"]) == ("new", "", "1")
    assert fresh["prompt"] == 'Why, "exactly", does it work?'  # one line, quoted safely
