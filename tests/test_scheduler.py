"""Scheduling on fsrs: exact intervals at fixed UTC times (fuzzing off), lapses, leeches, days."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import T0

from dlprep.config import Settings
from dlprep.scheduler import (
    CardState,
    Rating,
    Scheduler,
    describe_interval,
    next_study_day_start,
    study_day_start,
)

UTC = timezone.utc


@pytest.fixture
def scheduler():
    return Scheduler(Settings(), enable_fuzzing=False)


def test_new_card_intervals_are_fsrs_defaults(scheduler):
    intervals = scheduler.preview(CardState("q"), T0)
    assert intervals == {
        Rating.Again: timedelta(minutes=1),
        Rating.Hard: timedelta(minutes=5, seconds=30),  # halfway between the 1m and 10m steps
        Rating.Good: timedelta(minutes=10),
        Rating.Easy: timedelta(days=8),
    }


def test_good_twice_graduates_to_review(scheduler):
    first = scheduler.review(CardState("q"), Rating.Good, T0).after
    assert (first.state_name, first.due, first.reps) == ("learning", T0 + timedelta(minutes=10), 1)
    later = T0 + timedelta(minutes=10)
    second = scheduler.review(first, Rating.Good, later).after
    assert second.state_name == "review"
    assert second.due == later + timedelta(days=2)
    assert second.last_review == later and second.reps == 2 and second.lapses == 0


def test_preview_matches_what_review_does(scheduler):
    card = scheduler.review(CardState("q"), Rating.Good, T0).after
    now = T0 + timedelta(hours=1)
    for rating, delta in scheduler.preview(card, now).items():
        assert scheduler.review(card, rating, now).after.due == now + delta


def test_again_on_a_review_card_is_a_lapse(scheduler):
    card = scheduler.review(CardState("q"), Rating.Easy, T0).after
    assert card.state_name == "review"
    lapsed = scheduler.review(card, Rating.Again, card.due).after
    assert (lapsed.state_name, lapsed.lapses) == ("relearning", 1)
    # Again while relearning is not another lapse.
    again = scheduler.review(lapsed, Rating.Again, lapsed.due).after
    assert again.lapses == 1


def _lapse(scheduler, card, now):
    card = scheduler.review(card, Rating.Again, now).after
    return scheduler.review(card, Rating.Easy, now + timedelta(minutes=10)).after


def test_eighth_lapse_makes_a_leech_and_suspends(scheduler):
    card = scheduler.review(CardState("q"), Rating.Easy, T0).after
    now = T0
    for lapse in range(1, 8):
        now += timedelta(days=30)
        card = _lapse(scheduler, card, now)
        assert card.lapses == lapse and not card.leech and not card.suspended
    now += timedelta(days=30)
    result = scheduler.review(card, Rating.Again, now)
    assert result.after.lapses == 8
    assert result.became_leech and result.after.leech and result.after.suspended


def test_leech_threshold_is_a_setting():
    scheduler = Scheduler(Settings(leech_threshold=2), enable_fuzzing=False)
    card = scheduler.review(CardState("q"), Rating.Easy, T0).after
    card = _lapse(scheduler, card, T0 + timedelta(days=20))
    assert not card.leech
    assert scheduler.review(card, Rating.Again, T0 + timedelta(days=40)).became_leech


def test_naive_or_non_utc_times_are_refused(scheduler):
    with pytest.raises(ValueError):
        scheduler.review(CardState("q"), Rating.Good, datetime(2026, 1, 1, 12))
    with pytest.raises(ValueError):
        scheduler.preview(CardState("q"), T0.astimezone(ZoneInfo("Asia/Tokyo")))


def test_desired_retention_changes_intervals():
    card = Scheduler(Settings(), enable_fuzzing=False).review(CardState("q"), Rating.Easy, T0).after
    now = card.due
    strict = Scheduler(Settings(desired_retention=0.97), enable_fuzzing=False)
    lax = Scheduler(Settings(desired_retention=0.8), enable_fuzzing=False)
    assert strict.preview(card, now)[Rating.Good] < lax.preview(card, now)[Rating.Good]


def test_retrievability_falls_with_time(scheduler):
    assert scheduler.retrievability(CardState("q"), T0) == 0.0
    card = scheduler.review(CardState("q"), Rating.Easy, T0).after
    r = [scheduler.retrievability(card, T0 + timedelta(days=d)) for d in (0, 5, 50)]
    assert r[0] == pytest.approx(1.0) and r[0] > r[1] > r[2] > 0


def test_review_does_not_touch_the_input(scheduler):
    card = CardState("q")
    scheduler.review(card, Rating.Good, T0)
    assert card == CardState("q")
    assert replace(card) == card


PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("now", "start"),
    [
        # 13:00 in Paris: the day began at 04:00 Paris (03:00 UTC in winter).
        (datetime(2026, 3, 2, 12, 0, tzinfo=UTC), datetime(2026, 3, 2, 3, 0, tzinfo=UTC)),
        # 02:30 in Paris still belongs to the previous study day.
        (datetime(2026, 3, 2, 1, 30, tzinfo=UTC), datetime(2026, 3, 1, 3, 0, tzinfo=UTC)),
        # In summer time 04:00 Paris is 02:00 UTC.
        (datetime(2026, 7, 1, 9, 0, tzinfo=UTC), datetime(2026, 7, 1, 2, 0, tzinfo=UTC)),
    ],
)
def test_study_day_starts_at_the_local_hour(now, start):
    assert study_day_start(now, 4, PARIS) == start


def test_study_day_across_a_dst_change_is_23_hours():
    # Paris moves to summer time on 2026-03-29 at 02:00 local.
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    start, end = study_day_start(now, 4, PARIS), next_study_day_start(now, 4, PARIS)
    assert start == datetime(2026, 3, 28, 3, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)


def test_day_start_hour_is_configurable():
    now = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    assert study_day_start(now, 0, ZoneInfo("UTC")) == datetime(2026, 3, 2, tzinfo=UTC)
    assert study_day_start(now, 6, ZoneInfo("UTC")) == datetime(2026, 3, 1, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=30), "<1m"),
        (timedelta(minutes=10), "10m"),
        (timedelta(hours=5), "5h"),
        (timedelta(days=3), "3d"),
        (timedelta(days=75), "2.5mo"),
        (timedelta(days=730), "2.0y"),
    ],
)
def test_interval_labels(delta, text):
    assert describe_interval(delta) == text


def test_recall_is_fsrs_own_retrievability(scheduler):
    import random

    from fsrs import Card, State

    rng = random.Random(7)
    for _ in range(200):
        stability = rng.uniform(0.1, 400)
        last = T0 - timedelta(days=rng.uniform(0, 500))
        card = Card(
            card_id=1,
            state=State.Review,
            stability=stability,
            difficulty=5.0,
            due=T0,
            last_review=last,
        )
        expected = scheduler._fsrs.get_card_retrievability(card, T0)
        assert scheduler.recall(stability, last, T0) == pytest.approx(expected, rel=1e-12)
