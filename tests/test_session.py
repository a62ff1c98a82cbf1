"""Which cards a quiz shows, in what order, and what answering does (real store, fixed times)."""

from __future__ import annotations

import random
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import T0, make_bank, make_question

from dlprep.config import Settings
from dlprep.errors import NotFoundError
from dlprep.scheduler import Rating, Scheduler
from dlprep.session import QuizSession
from dlprep.store import Store

UTC_SETTINGS = Settings(timezone="UTC")  # study days start at 04:00 UTC


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "p.db") as s:
        yield s


@pytest.fixture
def bank():
    return make_bank(
        [make_question(f"a{i}", "alpha", tags=["x"] if i % 2 else []) for i in range(6)]
        + [make_question(f"b{i}", "beta") for i in range(4)]
    )


def session(store, bank, now=T0, settings=UTC_SETTINGS, **kw):
    scheduler = Scheduler(settings, enable_fuzzing=False)
    return QuizSession(store, bank, settings, now, scheduler=scheduler, rng=random.Random(0), **kw)


def ids(s: QuizSession) -> list[str]:
    return [item.question.id for item in s.queue]


def answer_all(s: QuizSession, rating: Rating, now) -> None:
    while (item := s.next()) is not None:
        s.answer(item, rating, now)
        s.queue = [i for i in s.queue if i.question.id != item.question.id]  # no relearning steps


def test_new_cards_in_bank_order_up_to_the_daily_limit(store, bank):
    s = session(store, bank, settings=Settings(timezone="UTC", new_per_day=3))
    assert ids(s) == ["a0", "a1", "a2"]
    assert s.new_waiting == 7


def test_due_cards_come_before_new_ones(store, bank):
    two_a_day = Settings(timezone="UTC", new_per_day=2)
    answer_all(session(store, bank, settings=two_a_day), Rating.Easy, T0)
    later = T0 + timedelta(days=9)  # the two Easy cards are due (8 days)
    assert ids(session(store, bank, now=later, settings=two_a_day)) == ["a0", "a1", "a2", "a3"]


def test_new_limit_counts_what_was_already_studied_today(store, bank):
    settings = Settings(timezone="UTC", new_per_day=4)
    answer_all(session(store, bank, settings=settings, limit=3), Rating.Easy, T0)
    assert ids(session(store, bank, now=T0 + timedelta(hours=1), settings=settings)) == ["a3"]
    # 04:00 UTC the next day is a new study day: the limit is fresh.
    next_day = T0 + timedelta(hours=16, minutes=1)
    assert len(session(store, bank, now=next_day, settings=settings).queue) == 4


def test_new_option_overrides_what_is_left_of_the_limit(store, bank):
    settings = Settings(timezone="UTC", new_per_day=1)
    answer_all(session(store, bank, settings=settings), Rating.Easy, T0)
    assert ids(session(store, bank, settings=settings)) == []
    assert ids(session(store, bank, settings=settings, new=2)) == ["a1", "a2"]


def test_review_limit_caps_due_reviews(store, bank):
    settings = Settings(timezone="UTC", new_per_day=10, reviews_per_day=2)
    answer_all(session(store, bank, settings=settings), Rating.Easy, T0)
    later = T0 + timedelta(days=20)
    s = session(
        store, bank, now=later, settings=Settings(timezone="UTC", new_per_day=0, reviews_per_day=2)
    )
    assert len(s.queue) == 2


def test_topic_tag_and_limit_select(store, bank):
    assert ids(session(store, bank, topics=("beta",))) == ["b0", "b1", "b2", "b3"]
    assert ids(session(store, bank, tags=("x",))) == ["a1", "a3", "a5"]
    assert ids(session(store, bank, limit=2)) == ["a0", "a1"]
    with pytest.raises(NotFoundError, match="did you mean 'beta'"):
        session(store, bank, topics=("betta",))


def test_suspended_and_buried_cards_are_left_out(store, bank):
    s = session(store, bank, topics=("beta",))
    s.suspend(s.next())
    s.bury(s.next(), T0)
    assert ids(session(store, bank, topics=("beta",))) == ["b2", "b3"]
    tomorrow = T0 + timedelta(days=1)
    assert ids(session(store, bank, now=tomorrow, topics=("beta",))) == ["b1", "b2", "b3"]


def test_a_failed_learning_card_comes_back_in_the_same_session(store, bank):
    s = session(store, bank, limit=2)
    first = s.next()
    s.answer(first, Rating.Again, T0)
    assert ids(s) == ["a1", "a0"]


def test_undo_puts_the_card_back_and_restores_it(store, bank):
    s = session(store, bank, limit=2)
    item = s.next()
    s.answer(item, Rating.Good, T0)
    assert store.card("a0").reps == 1
    assert s.undo(T0).question.id == "a0"
    assert ids(s) == ["a0", "a1"]
    assert store.card("a0").is_new and store.review_count() == 0
    assert s.undo(T0) is None


def test_cram_changes_nothing(store, bank):
    s = session(store, bank, cram=True, topics=("beta",))
    assert len(s.queue) == 4  # every card, not only due ones
    while (item := s.next()) is not None:
        s.answer(item, Rating.Again, T0)
    assert store.review_count() == 0 and store.cards() == {}
    assert s.summary(T0).answered == 4 and s.summary(T0).cram


def test_questions_removed_from_the_bank_are_skipped_not_fatal(store, bank):
    answer_all(session(store, bank, limit=2), Rating.Easy, T0)
    smaller = make_bank([q for q in bank.questions if q.id != "a0"])
    s = session(
        store,
        smaller,
        now=T0 + timedelta(days=30),
        settings=Settings(timezone="UTC", new_per_day=0),
    )
    assert ids(s) == ["a1"]
    assert store.card("a0").reps == 1  # its history is kept


def test_mcq_and_numeric_are_graded_and_suggest_a_rating(store):
    bank = make_bank(
        [
            make_question("m", kind="mcq", choices=["ReLU", "Sigmoid", "Tanh"], correct="ReLU"),
            make_question(
                "n",
                kind="numeric",
                generator="conv-output-size",
                prompt="k={kernel} s={stride} p={padding} n={size}?",
            ),
        ]
    )
    s = session(store, bank)
    mcq, numeric = s.next(), s.next()
    letter = "ABC"[mcq.choices.index("ReLU")]
    assert s.grade(mcq, letter.lower()).correct
    assert s.suggested_rating(s.grade(mcq, "Z")) == Rating.Again
    assert str(numeric.draw.params["size"]) in numeric.prompt
    right = s.grade(numeric, str(int(numeric.draw.value)))
    assert right.correct and s.suggested_rating(right) == Rating.Good
    s.answer(numeric, Rating.Good, T0, response="12", grade=s.grade(numeric, "12"))
    assert store.history("n")[0].auto_correct is (numeric.draw.value == 12)


def test_study_days_follow_the_configured_zone(store, bank):
    tokyo = Settings(timezone="Asia/Tokyo", new_per_day=1)
    answer_all(session(store, bank, settings=tokyo), Rating.Easy, T0)  # 21:00 in Tokyo
    # 03:00 Tokyo the next calendar day is still the same study day...
    assert ids(session(store, bank, now=T0 + timedelta(hours=6), settings=tokyo)) == []
    # ...and 04:00 Tokyo starts a new one.
    assert ids(session(store, bank, now=T0 + timedelta(hours=7), settings=tokyo)) == ["a1"]
    assert ZoneInfo("Asia/Tokyo")  # the zone database is present
