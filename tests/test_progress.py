"""`dlprep stats` figures from a fixed review history: true retention next to FSRS's
prediction by day and by interval, the forecast of due cards, streaks and the calendar."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from conftest import make_bank, make_question

from dlprep.config import Settings
from dlprep.progress import build_progress, progress_json
from dlprep.scheduler import CardState, Rating, Scheduler
from dlprep.store import Store

UTC = timezone.utc
SETTINGS = Settings(timezone="Europe/Paris")  # study days start at 04:00 Paris time
SCHEDULER = Scheduler(SETTINGS, enable_fuzzing=False)
# Wednesday 2026-03-11, 15:00 Paris (14:00 UTC): today's study day began at 03:00 UTC.
NOW = datetime(2026, 3, 11, 14, 0, tzinfo=UTC)


def paris(day: int, hour: int, minute: int = 0) -> datetime:
    """A time in March 2026, Paris (UTC+1 until the 29th)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=1)


def answer(store: Store, qid: str, rating: Rating, when: datetime):
    return store.apply_review(qid, lambda c: SCHEDULER.review(c, rating, when), when)[1]


def in_review(store: Store, qid: str, stability: float, last: datetime) -> None:
    """Put a card straight into review, as if learned long ago."""
    store._write_card(
        CardState(qid, state=2, stability=stability, difficulty=5.0, due=last, last_review=last)
    )


@pytest.fixture
def history(tmp_path):
    bank = make_bank([make_question(f"q{i}") for i in range(6)])
    store = Store(tmp_path / "p.db")
    # Three cards in review, last seen on 1 March; answered on 9 March (8 days later):
    # two pass, one fails.
    for qid in ("q0", "q1", "q2"):
        in_review(store, qid, stability=10.0, last=paris(1, 8))
    results = [
        answer(store, "q0", Rating.Good, paris(9, 10)),
        answer(store, "q1", Rating.Hard, paris(9, 11)),
        answer(store, "q2", Rating.Again, paris(9, 12)),
    ]
    # q3 in review since 8 March (2 days), passed on 10 March at 02:30 Paris: that is still
    # the study day of 9 March (days start at 04:00).
    in_review(store, "q3", stability=5.0, last=paris(7, 12))
    results.append(answer(store, "q3", Rating.Good, paris(10, 2, 30)))
    # A new card seen on the 8th, 10th and 11th; it graduates on the 10th, so the 11th's
    # answer is a review, one day after the last. With the 9th: a 4-day streak.
    for day in (8, 10, 11):
        answer(store, "q4", Rating.Good, paris(day, 9))
    yield store, bank, results
    store.close()


def test_true_retention_sits_next_to_the_predicted_one(history):
    store, bank, results = history
    p = build_progress(store, bank, SETTINGS, NOW)
    by_day = {r.label: r for r in p.retention_by_day}
    day9 = by_day["2026-03-09"]
    assert (day9.answers, day9.passed) == (4, 3)  # 02:30 on the 10th belongs to the 9th
    predicted = [r.recall_before for r in results]
    assert day9.predicted == pytest.approx(sum(predicted) / 4)
    assert by_day["2026-03-10"].answers == 0  # q4's answer then was in learning, not review
    assert (by_day["2026-03-11"].answers, by_day["2026-03-11"].passed) == (1, 1)
    assert len(p.retention_by_day) == 30 and p.retention_by_day[-1].label == "2026-03-11"

    buckets = {r.label: r for r in p.retention_by_interval}
    assert set(buckets) == {"8-14 d", "2-3 d", "1 d"}  # q0-q2, q3, q4
    assert (buckets["8-14 d"].answers, buckets["8-14 d"].passed) == (3, 2)
    assert buckets["8-14 d"].true_retention == pytest.approx(2 / 3)
    assert p.retention.answers == 5 and p.retention.true_retention == pytest.approx(0.8)
    # FSRS's prediction for 8 days at stability 10 is the forgetting curve itself
    assert buckets["8-14 d"].predicted == pytest.approx(SCHEDULER.recall_after(10.0, 8))


def test_an_undone_answer_leaves_the_retention_figures(history):
    store, bank, _ = history
    store.undo(store.last_review().id, NOW)  # q4's answer today (learning: no change)
    answer(store, "q5", Rating.Good, NOW)
    in_review(store, "q5", 3.0, paris(8, 12))
    last = answer(store, "q5", Rating.Again, NOW + timedelta(minutes=1))
    before = build_progress(store, bank, SETTINGS, NOW + timedelta(minutes=2))
    store.undo(store.last_review().id, NOW + timedelta(minutes=2))
    after = build_progress(store, bank, SETTINGS, NOW + timedelta(minutes=2))
    assert last.recall_before is not None
    assert before.retention.answers == after.retention.answers + 1
    assert before.calendar[-1][1] == after.calendar[-1][1] + 1


def test_forecast_counts_cards_per_coming_study_day_and_overdue_ones_today(history):
    store, bank, _ = history
    # q0 is due in a few days, q2 (failed) is relearning, due in minutes; put q1 overdue
    in_review(store, "q1", 10.0, paris(1, 8))
    store._write_card(
        CardState("q5", state=2, stability=3.0, difficulty=5.0, due=paris(13, 3, 30),
                  last_review=paris(10, 12))
    )  # fmt: skip
    p = build_progress(store, bank, SETTINGS, NOW)
    forecast = dict(p.forecast)
    assert len(p.forecast) == 30 and p.forecast[0][0] == date(2026, 3, 11)
    assert forecast[date(2026, 3, 12)] >= 1  # 03:30 on the 13th is still the 12th's study day
    cards = store.cards()
    due_in_window = sum(
        1
        for c in cards.values()
        if c.state > 0 and not c.suspended and c.due < paris(11, 4) + timedelta(days=30)
    )
    assert sum(forecast.values()) == due_in_window
    overdue = sum(1 for c in cards.values() if c.state > 0 and c.due < paris(11, 4))
    assert forecast[date(2026, 3, 11)] >= overdue


def test_streak_and_calendar(history):
    store, bank, _ = history
    p = build_progress(store, bank, SETTINGS, NOW)
    assert len(p.calendar) == 365 and p.calendar[-1][0] == date(2026, 3, 11)
    counts = dict(p.calendar)
    assert counts[date(2026, 3, 9)] == 4 and counts[date(2026, 3, 8)] == 1
    assert counts[date(2026, 3, 11)] == 1
    assert p.streak == 4  # 8, 9, 10 and 11 March
    assert p.longest_streak == 4
    # Tomorrow before studying, the streak still stands; the day after, it is gone.
    tomorrow = build_progress(store, bank, SETTINGS, NOW + timedelta(days=1))
    assert tomorrow.streak == 4
    later = build_progress(store, bank, SETTINGS, NOW + timedelta(days=2))
    assert later.streak == 0 and later.longest_streak == 4


def test_study_days_that_start_off_the_hour_are_grouped_by_minute(tmp_path):
    # Kolkata is UTC+5:30: a study day starts at 22:30 UTC.
    settings = Settings(timezone="Asia/Kolkata")
    scheduler = Scheduler(settings, enable_fuzzing=False)
    bank = make_bank([make_question("a"), make_question("b")])
    with Store(tmp_path / "k.db") as store:
        for qid, when in (("a", "2026-03-10T22:20"), ("b", "2026-03-10T22:40")):
            t = datetime.fromisoformat(when + "+00:00")
            store.apply_review(qid, lambda c, t=t: scheduler.review(c, Rating.Good, t), t)
        p = build_progress(store, bank, settings, datetime(2026, 3, 11, 6, tzinfo=UTC))
    counts = dict(p.calendar)
    assert counts[date(2026, 3, 10)] == 1  # 03:50 on the 11th in Kolkata: still the 10th
    assert counts[date(2026, 3, 11)] == 1  # 04:10 on the 11th


def test_stats_json_carries_the_new_figures(history):
    store, bank, _ = history
    data = progress_json(build_progress(store, bank, SETTINGS, NOW))
    assert data["retention"]["overall"]["true_retention"] == 0.8
    assert [b["label"] for b in data["retention"]["by_interval"]] == ["1 d", "2-3 d", "8-14 d"]
    assert len(data["forecast"]) == 30 and len(data["calendar"]) == 365
    assert data["streak"] == {"current": 4, "longest": 4}
