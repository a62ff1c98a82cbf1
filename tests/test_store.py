"""The progress database: real SQLite files, crashes mid-answer, two writers at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import timedelta

import pytest
from conftest import T0

from dlprep.config import Settings
from dlprep.errors import StoreError
from dlprep.migrations import MIGRATIONS
from dlprep.scheduler import CardState, Rating, Scheduler
from dlprep.store import Store

SCHEDULER = Scheduler(Settings(), enable_fuzzing=False)


def _answer(store: Store, qid: str, rating: Rating, now):
    return store.apply_review(qid, lambda card: SCHEDULER.review(card, rating, now), now)


def test_a_fresh_database_has_its_migrations_recorded(tmp_path):
    path = tmp_path / "p.db"
    with Store(path):
        pass
    with Store(path):  # reopening applies nothing twice
        pass
    rows = sqlite3.connect(path).execute("SELECT id FROM migrations").fetchall()
    assert rows == [(number,) for number, _, _ in MIGRATIONS]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migration_2_backfills_what_the_scheduler_records_at_review_time(tmp_path):
    # A log written today records elapsed days and predicted recall at each review...
    with Store(tmp_path / "now.db") as store:
        for day, rating in enumerate([Rating.Good, Rating.Good, Rating.Again, Rating.Good]):
            when = T0 + timedelta(days=3 * day, hours=day)
            store.apply_review("q", lambda c, r=rating, t=when: SCHEDULER.review(c, r, t), when)
        recorded = store.dump()["reviews"]
    assert recorded[0]["recall_before"] is None and recorded[1]["recall_before"] is not None
    # ...and a schema-1 database holding the same log gets the same numbers by migrating.
    old = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    old.execute("CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)")
    old.executescript(MIGRATIONS[0][2])
    old.execute("INSERT INTO migrations VALUES (1, 'one', '2026-01-01T00:00:00+00:00')")
    columns = [c for c in recorded[0] if c not in ("elapsed_days", "recall_before")]
    for row in recorded:
        old.execute(
            f"INSERT INTO reviews ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [row[c] for c in columns],
        )
    old.close()
    with Store(tmp_path / "old.db") as store:
        migrated = store.dump()["reviews"]
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):  # trigger restored
            store._db.execute("UPDATE reviews SET rating = 1")
    for before, after in zip(recorded, migrated, strict=True):
        assert after["elapsed_days"] == before["elapsed_days"]
        expected = before["recall_before"]
        assert after["recall_before"] == (expected and pytest.approx(expected, rel=1e-12))


def test_answers_survive_reopening(tmp_path):
    path = tmp_path / "p.db"
    with Store(path) as store:
        review_id, result = _answer(store, "q1", Rating.Good, T0)
    with Store(path) as store:
        assert store.card("q1") == result.after
        assert [r.id for r in store.history("q1")] == [review_id]
        assert store.review_count() == 1


def test_untouched_question_is_a_new_card(tmp_path):
    with Store(tmp_path / "p.db") as store:
        assert store.card("never-seen") == CardState("never-seen")
        assert store.cards() == {}


def test_a_crash_inside_an_answer_keeps_earlier_answers_and_writes_nothing_half(tmp_path):
    path = tmp_path / "p.db"
    with Store(path) as store:
        _answer(store, "q1", Rating.Good, T0)

        def crash(card):
            raise KeyboardInterrupt  # Ctrl-C while the answer is being written

        with pytest.raises(KeyboardInterrupt):
            store.apply_review("q2", crash, T0)
    with Store(path) as store:
        assert store.review_count() == 1
        assert store.card("q1").reps == 1 and store.card("q2").is_new


def test_the_review_log_is_append_only(tmp_path):
    path = tmp_path / "p.db"
    with Store(path) as store:
        _answer(store, "q1", Rating.Good, T0)
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM reviews")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE reviews SET rating = 4")


def test_undo_restores_the_card_and_keeps_the_log(tmp_path):
    with Store(tmp_path / "p.db") as store:
        _, first = _answer(store, "q1", Rating.Good, T0)
        second_id, _ = _answer(store, "q1", Rating.Again, T0 + timedelta(minutes=10))
        assert store.undo(second_id, T0 + timedelta(minutes=11)) == first.after
        assert store.card("q1") == first.after
        assert store.review_count() == 1
        assert [r.undone for r in store.history("q1")] == [False, True]
        assert store.last_review().id != second_id
        with pytest.raises(StoreError, match="already undone"):
            store.undo(second_id, T0)


def test_only_a_cards_latest_answer_can_be_undone(tmp_path):
    with Store(tmp_path / "p.db") as store:
        first_id, _ = _answer(store, "q1", Rating.Good, T0)
        _answer(store, "q1", Rating.Good, T0 + timedelta(minutes=10))
        with pytest.raises(StoreError, match="answered again since"):
            store.undo(first_id, T0)


def test_undo_of_a_first_answer_makes_the_card_new_again(tmp_path):
    with Store(tmp_path / "p.db") as store:
        review_id, _ = _answer(store, "q1", Rating.Good, T0)
        store.undo(review_id, T0)
        assert store.card("q1").is_new and "q1" not in store.cards()


def test_counts_since_split_new_and_review_answers(tmp_path):
    with Store(tmp_path / "p.db") as store:
        _answer(store, "q1", Rating.Easy, T0)  # new -> review
        _answer(store, "q1", Rating.Good, T0 + timedelta(days=9))  # a review
        undone_id, _ = _answer(store, "q2", Rating.Good, T0 + timedelta(days=9))
        store.undo(undone_id, T0 + timedelta(days=9))
        assert store.counts_since(T0).__dict__ == {"new": 1, "reviews": 1, "total": 2}
        assert store.counts_since(T0 + timedelta(days=1)).total == 1


def test_due_cards_respects_suspend_bury_and_day_end(tmp_path):
    with Store(tmp_path / "p.db") as store:
        for qid in ("a", "b", "c", "d"):
            _answer(store, qid, Rating.Easy, T0)  # each due in 8 days
        store.set_suspended(["b"], True)
        store.bury(["c"], T0 + timedelta(days=9))
        now = T0 + timedelta(days=8, hours=1)
        due = store.due_cards(now + timedelta(minutes=20), now + timedelta(hours=12), now)
        assert [c.question_id for c in due] == ["a", "d"]
        later = T0 + timedelta(days=7)
        assert store.due_cards(later, later + timedelta(hours=12), later) == []


def test_settings_round_trip_and_defaults_are_not_stored(tmp_path):
    path = tmp_path / "p.db"
    with Store(path) as store:
        assert store.settings() == Settings()
        store.save_settings(Settings(new_per_day=5, timezone="Europe/Paris"))
    with Store(path) as store:
        assert store.settings().new_per_day == 5
    assert dict(sqlite3.connect(path).execute("SELECT key, value FROM settings")) == {
        "new_per_day": "5",
        "timezone": '"Europe/Paris"',
    }


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "p.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a dlprep database, or it is damaged") as info:
        Store(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == b"this is not sqlite" * 100  # left as it was


def test_an_unopenable_path_is_a_clear_error(tmp_path):
    (tmp_path / "p.db").mkdir()
    with pytest.raises(StoreError, match="p.db"):
        Store(tmp_path / "p.db")


def test_a_database_from_a_newer_dlprep_is_refused(tmp_path):
    path = tmp_path / "p.db"
    with Store(path):
        pass
    db = sqlite3.connect(path)
    db.execute("INSERT INTO migrations VALUES (999, 'future', '2030-01-01')")
    db.commit()
    with pytest.raises(StoreError, match="newer dlprep"):
        Store(path)


def _hammer(path: str, worker: int, answers: int) -> None:
    with Store(path) as store:
        for i in range(answers):
            now = T0 + timedelta(seconds=i, microseconds=worker)
            _answer(store, "shared", Rating.Good, now)
            _answer(store, f"own-{worker}-{i % 5}", Rating.Hard, now)


def test_two_processes_answering_at_once_lose_nothing(tmp_path):
    path = tmp_path / "p.db"
    Store(path).close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_hammer, args=(str(path), w, 60)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    with Store(path) as store:
        assert store.review_count() == 2 * 2 * 60
        # Every answer to the shared card was applied on top of the one before it.
        assert store.card("shared").reps == 2 * 60
        assert sum(c.reps for c in store.cards().values()) == 2 * 2 * 60
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
