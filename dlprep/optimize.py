"""`dlprep optimize`: fit FSRS's parameters to the learner's own review log.

The fit is the fsrs package's Optimizer (gradient descent on the log loss of FSRS's
predicted recall against what actually happened). It needs enough reviews on a later day
than the card's previous one; with fewer it would return the defaults, so dlprep says how
many more are needed instead. The log loss before and after is computed here, on the same
reviews, with the package's public scheduler, and the new parameters are kept only if they
predict the learner's reviews better.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dlprep.scheduler import card_number

# The fsrs Optimizer's mini-batch size: with fewer eligible reviews it returns the defaults.
MIN_REVIEWS = 512
# It reads at most the first 64 reviews of each card.
MAX_SEQUENCE = 64
# The package's optimizer steps through reviews one by one in Python (about 5 ms each on
# a laptop core): past this many reviews, a random sample of cards' histories is fitted.
DEFAULT_MAX_REVIEWS = 10_000

Answer = tuple[str, int, datetime, "int | None"]  # (question id, rating, time, ms)


@dataclass(frozen=True)
class Fit:
    answers: int  # answers used (after sampling)
    eligible: int  # of which reviews on a later day than the card's previous review
    cards: int
    sampled_from: int | None  # total answers when a sample was taken
    loss_before: float
    loss_after: float
    parameters: tuple[float, ...]

    @property
    def improved(self) -> bool:
        return self.loss_after < self.loss_before


def histories(answers: Sequence[Answer]) -> dict[str, list[Answer]]:
    by_card: dict[str, list[Answer]] = defaultdict(list)
    for answer in answers:
        by_card[answer[0]].append(answer)
    return by_card


def eligible_reviews(by_card: dict[str, list[Answer]]) -> int:
    """Reviews the optimizer learns from: within a card's first 64, on a later (whole) day
    than the review before."""
    count = 0
    for history in by_card.values():
        times = [at for _, _, at, _ in history[:MAX_SEQUENCE]]
        count += sum((b - a).days > 0 for a, b in zip(times, times[1:], strict=False))
    return count


def sample(
    by_card: dict[str, list[Answer]], max_answers: int, seed: int = 0
) -> dict[str, list[Answer]]:
    """Whole histories of randomly chosen cards, up to about `max_answers` answers."""
    if sum(len(h) for h in by_card.values()) <= max_answers:
        return by_card
    ids = sorted(by_card)
    random.Random(seed).shuffle(ids)
    chosen, total = {}, 0
    for qid in ids:
        if total >= max_answers:
            break
        chosen[qid] = by_card[qid]
        total += min(len(by_card[qid]), MAX_SEQUENCE)
    return chosen


def log_loss(by_card: dict[str, list[Answer]], parameters: Sequence[float]) -> float:
    """Mean binary log loss of FSRS's predicted recall (with `parameters`) on the eligible
    reviews: replay each card's history, predict, compare with recalled = rating > Again."""
    from fsrs import Card, Rating, Scheduler

    scheduler = Scheduler(parameters=tuple(parameters), enable_fuzzing=False)
    total, n = 0.0, 0
    for qid, history in by_card.items():
        card = None
        for _, rating, at, _ in history[:MAX_SEQUENCE]:
            if card is None:
                card = Card(card_id=card_number(qid), due=at)
            elif card.last_review and (at - card.last_review).days > 0:
                p = min(max(scheduler.get_card_retrievability(card, at), 1e-7), 1 - 1e-7)
                total -= math.log(p) if rating > 1 else math.log(1 - p)
                n += 1
            card, _ = scheduler.review_card(card, Rating(rating), at)
    return total / n if n else float("nan")


def fit(
    answers: Sequence[Answer],
    current: Sequence[float] | None,
    *,
    max_answers: int = DEFAULT_MAX_REVIEWS,
    seed: int = 0,
) -> Fit:
    """Fit parameters to `answers`; `current` is what the scheduler uses now (None: the
    defaults). Raises ValueError when there are too few eligible reviews."""
    from fsrs import Optimizer, Rating, ReviewLog
    from fsrs.scheduler import DEFAULT_PARAMETERS

    everything = histories(answers)
    eligible_all = eligible_reviews(everything)
    if eligible_all < MIN_REVIEWS:
        raise ValueError(
            f"{eligible_all} reviews so far came on a later day than the card's previous one; "
            f"the optimizer needs at least {MIN_REVIEWS} ({MIN_REVIEWS - eligible_all} more)"
        )
    by_card = sample(everything, max_answers, seed)
    used = sum(len(h) for h in by_card.values())
    logs = [
        ReviewLog(
            card_id=card_number(qid),
            rating=Rating(rating),
            review_datetime=at,
            review_duration=ms,
        )
        for history in by_card.values()
        for qid, rating, at, ms in history
    ]
    before = tuple(current) if current else tuple(DEFAULT_PARAMETERS)
    parameters = tuple(Optimizer(logs).compute_optimal_parameters())
    return Fit(
        answers=used,
        eligible=eligible_reviews(by_card),
        cards=len(by_card),
        sampled_from=len(answers) if used < len(answers) else None,
        loss_before=log_loss(by_card, before),
        loss_after=log_loss(by_card, parameters),
        parameters=parameters,
    )
