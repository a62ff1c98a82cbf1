"""A quiz session: which cards to show, in what order, and what answering one does.

No terminal I/O here: the CLI shows `QuizItem`s and passes back what the learner typed and
rated. Time is always a parameter.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dlprep.bank import Bank
from dlprep.config import Settings
from dlprep.generators import Draw, draw
from dlprep.grading import Grade, grade_mcq, grade_numeric
from dlprep.questions import Question
from dlprep.scheduler import (
    NEW,
    CardState,
    Rating,
    ReviewResult,
    Scheduler,
    study_day,
)
from dlprep.store import Store

REVIEW = 2
LEARN_AHEAD = timedelta(minutes=20)  # learning steps due this soon are shown now, as in Anki


@dataclass
class QuizItem:
    question: Question
    card: CardState  # as it was when the session started
    prompt: str  # with a parametric question's numbers filled in
    choices: list[str] = field(default_factory=list)  # mcq choices in the order shown
    draw: Draw | None = None

    @property
    def expected_value(self) -> float | None:
        return self.draw.value if self.draw else self.question.value


@dataclass
class Answered:
    item: QuizItem
    rating: Rating
    result: ReviewResult
    review_id: int | None  # None in cram mode: nothing was stored
    grade: Grade | None


@dataclass
class Summary:
    answered: int
    ratings: Counter
    auto_correct: int
    auto_graded: int
    seconds: float
    new_cards: int
    leeches: list[str]
    left_in_queue: int
    next_due: datetime | None
    cram: bool


class QuizSession:
    def __init__(
        self,
        store: Store,
        bank: Bank,
        settings: Settings,
        now: datetime,
        *,
        topics: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        limit: int | None = None,
        new: int | None = None,
        cram: bool = False,
        scheduler: Scheduler | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store, self.bank, self.settings = store, bank, settings
        self.scheduler = scheduler or Scheduler(settings)
        self.cram = cram
        self.rng = rng or random.Random()
        self.started = now
        self.answered: list[Answered] = []
        self.new_waiting = 0  # new cards left out by today's limit
        self._selected = {q.id for q in bank.select(topics, tags)}
        self.queue: list[QuizItem] = [
            self._item(card) for card in self._initial_cards(now, limit, new)
        ]
        self.initial_size = len(self.queue)

    # -- building the queue ------------------------------------------------------------------

    def _initial_cards(self, now: datetime, limit: int | None, new: int | None) -> list[CardState]:
        if self.cram:
            # Cram: every selected, unsuspended question, weakest first, the schedule untouched.
            stored = self.store.cards()
            order = {q.id: i for i, q in enumerate(self.bank.questions)}
            cards = [stored.get(qid) or CardState(qid) for qid in self._selected]
            cards = [c for c in cards if not c.suspended]
            cards.sort(
                key=lambda c: (
                    c.is_new,
                    self.scheduler.retrievability(c, now),
                    order[c.question_id],
                )
            )
            return cards[:limit]
        day_start, next_day = study_day(now, self.settings)
        done = self.store.counts_since(day_start)
        due = [
            c
            for c in self.store.due_cards(now + LEARN_AHEAD, next_day, now)
            if c.question_id in self._selected
        ]
        learning = [c for c in due if c.state != REVIEW]
        reviews = [c for c in due if c.state == REVIEW]
        reviews = reviews[: max(0, self.settings.reviews_per_day - done.reviews)]
        new_budget = new if new is not None else max(0, self.settings.new_per_day - done.new)
        taken = self.store.not_new_or_unavailable(now)
        fresh = [
            CardState(q.id)
            for q in self.bank.questions
            if q.id in self._selected and q.id not in taken
        ]
        self.new_waiting = max(0, len(fresh) - new_budget)
        fresh = fresh[:new_budget]
        return (learning + reviews + fresh)[:limit]

    def _item(self, card: CardState) -> QuizItem:
        question = self.bank.get(card.question_id)
        item = QuizItem(question, card, question.prompt)
        if question.generator:
            item.draw = draw(question.generator, self.rng.getrandbits(32))
            item.prompt = question.prompt.format_map(item.draw.params)
        if question.kind == "mcq":
            item.choices = self.rng.sample(question.choices, k=len(question.choices))
        return item

    # -- answering ---------------------------------------------------------------------------

    def next(self) -> QuizItem | None:
        return self.queue.pop(0) if self.queue else None

    def grade(self, item: QuizItem, response: str) -> Grade | None:
        """Grade an auto-graded answer; None for open (self-graded) questions."""
        question = item.question
        if question.kind == "mcq":
            return grade_mcq(response, item.choices, question.correct or "")
        if question.kind == "numeric":
            return grade_numeric(
                response, item.expected_value or 0.0, question.tolerance, question.rel_tolerance
            )
        return None

    @staticmethod
    def suggested_rating(grade: Grade | None) -> Rating:
        """Correct -> Good, wrong -> Again; self-graded cards default to Good."""
        return Rating.Again if grade is not None and not grade.correct else Rating.Good

    def intervals(self, item: QuizItem, now: datetime) -> dict[Rating, timedelta]:
        """What each rating would do to the card as it is stored now."""
        return self.scheduler.preview(self.store.card(item.question.id), now)

    def answer(
        self,
        item: QuizItem,
        rating: Rating,
        now: datetime,
        *,
        response: str = "",
        duration_ms: int | None = None,
        grade: Grade | None = None,
    ) -> Answered:
        def transition(card: CardState) -> ReviewResult:
            return self.scheduler.review(card, rating, now)

        if self.cram:
            result, review_id = transition(self.store.card(item.question.id)), None
        else:
            review_id, result = self.store.apply_review(
                item.question.id,
                transition,
                now,
                duration_ms=duration_ms,
                response=response or None,
                auto_correct=None if grade is None else grade.correct,
                draw=None
                if item.draw is None
                else {
                    "generator": item.draw.generator,
                    "params": item.draw.params,
                    "value": item.draw.value,
                },
            )
            after = result.after
            if after.state != REVIEW and not after.suspended and after.due <= now + LEARN_AHEAD:
                self.queue.append(self._item(after))  # a learning step: see it again this session
        answered = Answered(item, Rating(rating), result, review_id, grade)
        self.answered.append(answered)
        return answered

    def undo(self, now: datetime) -> QuizItem | None:
        """Take back this session's last answer; its card is shown again next."""
        if not self.answered:
            return None
        last = self.answered.pop()
        if last.review_id is not None:
            self.store.undo(last.review_id, now)
        self._drop(last.item.question.id)
        self.queue.insert(0, last.item)
        return last.item

    def bury(self, item: QuizItem, now: datetime) -> datetime:
        """Hide the card until the next study day; returns when it comes back."""
        until = study_day(now, self.settings)[1]
        self.store.bury([item.question.id], until)
        self._drop(item.question.id)
        return until

    def suspend(self, item: QuizItem) -> None:
        self.store.set_suspended([item.question.id], True)
        self._drop(item.question.id)

    def _drop(self, question_id: str) -> None:
        self.queue = [i for i in self.queue if i.question.id != question_id]

    # -- the end -----------------------------------------------------------------------------

    def summary(self, now: datetime) -> Summary:
        auto = [a for a in self.answered if a.grade is not None]
        return Summary(
            answered=len(self.answered),
            ratings=Counter(a.rating for a in self.answered),
            auto_correct=sum(a.grade.correct for a in auto),
            auto_graded=len(auto),
            seconds=(now - self.started).total_seconds(),
            new_cards=sum(a.result.before.state == NEW for a in self.answered),
            leeches=[a.item.question.id for a in self.answered if a.result.became_leech],
            left_in_queue=len(self.queue),
            next_due=self.store.next_due(self._selected, now),
            cram=self.cram,
        )
