"""A simulated learner: realistic review histories without a person, for the tests and the
benchmarks (`dlprep stats`, `export`, `optimize` on a million reviews).

The learner's memory is an FSRS model with its own parameters (by default one who forgets
faster than FSRS's defaults assume), so their true recall differs from what the scheduler
predicts, as a real person's does. dlprep's real Scheduler plans the reviews; at each one
the learner recalls with the probability their own memory gives, then rates Again on a
failure and Hard, Good or Easy on a success. Everything is seeded: the same arguments give
the same history.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fsrs import Card
from fsrs import Rating as FsrsRating
from fsrs import Scheduler as FsrsScheduler
from fsrs.scheduler import DEFAULT_PARAMETERS

from dlprep.config import Settings
from dlprep.scheduler import CardState, Rating, ReviewResult, Scheduler, card_number


def forgetful_parameters(factor: float = 0.5) -> tuple[float, ...]:
    """FSRS's default parameters with every initial stability scaled by `factor`, and
    a smaller stability increase after a success: a learner who forgets faster."""
    w = list(DEFAULT_PARAMETERS)
    for i in range(4):
        w[i] *= factor
    w[8] = max(0.0, w[8] - 0.5)  # e^w8 multiplies the stability increase on success
    return tuple(w)


@dataclass(frozen=True)
class Learner:
    parameters: tuple[float, ...] = forgetful_parameters()
    # On a success: how often the learner presses Hard / Good / Easy.
    success_ratings: tuple[float, float, float] = (0.15, 0.75, 0.10)
    answer_seconds: tuple[int, int] = (8, 60)  # a uniform draw for each answer's duration


@dataclass(frozen=True)
class SimulatedReview:
    question_id: str
    result: ReviewResult
    reviewed_at: datetime
    duration_ms: int


def simulate(
    question_ids: Sequence[str],
    days: int,
    start: datetime,
    *,
    settings: Settings | None = None,
    learner: Learner | None = None,
    new_per_day: int = 20,
    reviews_per_day: int = 200,
    skip_day: float = 0.15,
    session_hours: float = 3.0,
    seed: int = 0,
) -> Iterator[SimulatedReview]:
    """Reviews of a learner who studies on `days` consecutive days from `start` (missing a
    day with probability `skip_day`), each day answering what is due (up to
    `reviews_per_day`, learning steps included) and new cards (up to `new_per_day`) while
    learning steps wait, for at most `session_hours`."""
    settings = settings or Settings()
    learner = learner or Learner()
    rng = random.Random(seed)
    scheduler = Scheduler(settings, enable_fuzzing=False)
    memory = FsrsScheduler(parameters=learner.parameters, enable_fuzzing=False)
    cards: dict[str, CardState] = {}
    truth: dict[str, Card] = {}
    queue: list[tuple[datetime, str]] = []  # (due, id); stale entries are skipped
    fresh = list(question_ids)
    fresh.reverse()  # pop() takes them in bank order
    for day in range(days):
        if rng.random() < skip_day:
            continue
        now = start + timedelta(days=day, minutes=rng.randint(0, 180))
        day_end = start + timedelta(days=day + 1)
        session_end = now + timedelta(hours=session_hours)
        answered = new_today = 0
        while answered < reviews_per_day and now < session_end:
            while queue and cards[queue[0][1]].due != queue[0][0]:
                heapq.heappop(queue)  # the card was reviewed since: an old entry
            due_now = queue and (
                queue[0][0] <= now or (cards[queue[0][1]].state == 2 and queue[0][0] <= day_end)
            )
            if due_now:
                _, qid = heapq.heappop(queue)
            elif new_today < new_per_day and fresh:
                qid = fresh.pop()  # new cards fill the wait for learning steps, as in Anki
                new_today += 1
            elif queue and queue[0][0] <= day_end:
                due, qid = heapq.heappop(queue)
                now = max(now, due)  # only learning steps left: wait for the next one
            else:
                break
            card = cards.get(qid) or CardState(qid)
            shadow = truth.get(qid) or Card(card_id=card_number(qid), due=now)
            if card.is_new:
                rating = rng.choices(list(Rating), weights=(0.2, 0.2, 0.5, 0.1))[0]
            elif rng.random() < memory.get_card_retrievability(shadow, now):
                rating = rng.choices(
                    (Rating.Hard, Rating.Good, Rating.Easy), weights=learner.success_ratings
                )[0]
            else:
                rating = Rating.Again
            result = scheduler.review(card, rating, now)
            truth[qid], _ = memory.review_card(shadow, FsrsRating(int(rating)), now)
            cards[qid] = result.after
            heapq.heappush(queue, (result.after.due, qid))
            seconds = rng.randint(*learner.answer_seconds)
            yield SimulatedReview(qid, result, now, seconds * 1000)
            answered += 1
            now += timedelta(seconds=seconds)
