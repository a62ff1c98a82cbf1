"""Pure scheduling on top of the fsrs package: takes `now`, returns new state, does no I/O.

A card is new until its first review (state NEW); then fsrs's Learning, Review and
Relearning states apply. Leeches follow Anki: at `leech_threshold` lapses (a lapse is
Again on a card in Review) and every half-threshold after, the card is tagged and suspended.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from fsrs import Card, Rating, State
from fsrs import Scheduler as FsrsScheduler

from dlprep.config import Settings

__all__ = [
    "NEW",
    "CardState",
    "Rating",
    "ReviewResult",
    "Scheduler",
    "describe_interval",
    "next_study_day_start",
    "study_day",
    "study_day_start",
]

NEW = 0  # our state for a card never reviewed; 1-3 are fsrs.State values
STATE_NAMES = {NEW: "new", 1: "learning", 2: "review", 3: "relearning"}
UTC = timezone.utc


def _require_utc(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise ValueError("times passed to the scheduler must be timezone-aware UTC")


@dataclass(frozen=True)
class CardState:
    """Everything dlprep knows about one question's progress."""

    question_id: str
    state: int = NEW
    step: int | None = None
    stability: float | None = None
    difficulty: float | None = None
    due: datetime | None = None
    last_review: datetime | None = None
    reps: int = 0
    lapses: int = 0
    suspended: bool = False
    leech: bool = False
    buried_until: datetime | None = None

    @property
    def is_new(self) -> bool:
        return self.state == NEW

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def available(self, now: datetime) -> bool:
        """Not suspended and not buried at `now`."""
        return not self.suspended and (self.buried_until is None or self.buried_until <= now)


@dataclass(frozen=True)
class ReviewResult:
    before: CardState
    after: CardState
    rating: Rating
    became_leech: bool
    # Days since the card's previous review (whole days, as FSRS counts them) and the recall
    # FSRS predicted for this moment; None for a card's first review.
    elapsed_days: int | None = None
    recall_before: float | None = None


def card_number(question_id: str) -> int:
    """A stable 63-bit integer for a question id (fsrs wants integer card ids)."""
    return int.from_bytes(hashlib.blake2b(question_id.encode(), digest_size=8).digest(), "big") >> 1


class Scheduler:
    def __init__(self, settings: Settings | None = None, *, enable_fuzzing: bool = True) -> None:
        self.settings = settings or Settings()
        kwargs = dict(
            desired_retention=self.settings.desired_retention,
            maximum_interval=self.settings.maximum_interval_days,
        )
        if self.settings.fsrs_parameters:
            kwargs["parameters"] = tuple(self.settings.fsrs_parameters)
        self._fsrs = FsrsScheduler(enable_fuzzing=enable_fuzzing, **kwargs)
        # Interval labels on the rating buttons are shown without fuzz, as Anki does.
        self._preview = FsrsScheduler(enable_fuzzing=False, **kwargs)

    def _to_fsrs(self, card: CardState, now: datetime) -> Card:
        if card.is_new:
            return Card(
                card_id=card_number(card.question_id), state=State.Learning, step=0, due=now
            )
        return Card(
            card_id=card_number(card.question_id),
            state=State(card.state),
            step=card.step,
            stability=card.stability,
            difficulty=card.difficulty,
            due=card.due or now,
            last_review=card.last_review,
        )

    def review(self, card: CardState, rating: Rating, now: datetime) -> ReviewResult:
        _require_utc(now)
        rating = Rating(rating)
        updated, _log = self._fsrs.review_card(self._to_fsrs(card, now), rating, now)
        lapses = card.lapses + (rating == Rating.Again and card.state == State.Review)
        threshold = self.settings.leech_threshold
        became_leech = (
            lapses != card.lapses
            and lapses >= threshold
            and (lapses - threshold) % max(1, threshold // 2) == 0
        )
        after = replace(
            card,
            state=int(updated.state),
            step=updated.step,
            stability=updated.stability,
            difficulty=updated.difficulty,
            due=updated.due,
            last_review=updated.last_review,
            reps=card.reps + 1,
            lapses=lapses,
            leech=card.leech or became_leech,
            suspended=card.suspended or became_leech,
            buried_until=None,
        )
        elapsed = recall = None
        if not card.is_new and card.stability is not None and card.last_review is not None:
            elapsed = max(0, (now - card.last_review).days)
            recall = self.recall_after(card.stability, elapsed)
        return ReviewResult(card, after, rating, became_leech, elapsed, recall)

    def preview(self, card: CardState, now: datetime) -> dict[Rating, timedelta]:
        """The interval each rating would give now (unfuzzed)."""
        _require_utc(now)
        fsrs_card = self._to_fsrs(card, now)
        return {r: self._preview.review_card(fsrs_card, r, now)[0].due - now for r in Rating}

    def retrievability(self, card: CardState, now: datetime) -> float:
        """Predicted probability of recall at `now` (0 for a card never reviewed)."""
        if card.is_new or card.stability is None or card.last_review is None:
            return 0.0
        return self.recall(card.stability, card.last_review, now)

    def recall(self, stability: float, last_review: datetime, now: datetime) -> float:
        """The FSRS forgetting curve R = (1 + factor * t / S) ** -decay, t in whole days.

        The same number as fsrs's `get_card_retrievability` (tests check it), without
        building an fsrs Card: `stats` evaluates it for every card.
        """
        return self.recall_after(stability, max(0, (now - last_review).days))

    def recall_after(self, stability: float, elapsed_days: int) -> float:
        decay, factor = self.curve()
        return (1 + factor * elapsed_days / stability) ** decay

    def curve(self) -> tuple[float, float]:
        """(decay, factor) of the forgetting curve R(t) = (1 + factor * t / S) ** decay."""
        decay = -self._fsrs.parameters[20]
        return decay, 0.9 ** (1 / decay) - 1


def study_day_start(now: datetime, day_starts_at: int = 4, zone=None) -> datetime:
    """The UTC instant at which the study day containing `now` began.

    A study day starts at `day_starts_at` local time (`zone`, or the system's when None),
    so a review at 1 am still counts towards the previous day, as in Anki.
    """
    _require_utc(now)
    if zone is None:
        local = datetime.fromtimestamp(now.timestamp())  # naive, system local time
    else:
        local = now.astimezone(zone).replace(tzinfo=None)
    start = local.replace(hour=day_starts_at, minute=0, second=0, microsecond=0)
    if local < start:
        start -= timedelta(days=1)
    aware = start.astimezone() if zone is None else start.replace(tzinfo=zone)
    return aware.astimezone(UTC)


def next_study_day_start(now: datetime, day_starts_at: int = 4, zone=None) -> datetime:
    """The UTC instant at which the next study day begins (handles 23- and 25-hour days)."""
    start = study_day_start(now, day_starts_at, zone)
    return study_day_start(start + timedelta(hours=26), day_starts_at, zone)


def study_day(now: datetime, settings: Settings) -> tuple[datetime, datetime]:
    """(start, end) in UTC of the study day containing `now`, as the settings define days."""
    zone = settings.zone()
    return (
        study_day_start(now, settings.day_starts_at, zone),
        next_study_day_start(now, settings.day_starts_at, zone),
    )


def describe_interval(delta: timedelta) -> str:
    """'<1m', '10m', '5h', '3d', '2.1mo', '1.4y' — short, as on Anki's buttons."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 60:
        return "<1m"
    if seconds < 3600:
        return f"{round(seconds / 60)}m"
    if seconds < 86400:
        return f"{round(seconds / 3600)}h"
    days = seconds / 86400
    if days < 30:
        return f"{round(days)}d"
    if days < 365:
        return f"{days / 30:.1f}mo"
    return f"{days / 365:.1f}y"
