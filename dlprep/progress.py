"""Where the learner stands: counts, per-topic mastery, weakest questions, recent activity.

Pure computation over what the store and the bank return; `dlprep stats` renders it and
`export.markdown_report` writes it out.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from dlprep.bank import Bank
from dlprep.config import Settings
from dlprep.scheduler import (
    NEW,
    STATE_NAMES,
    CardState,
    Scheduler,
    next_study_day_start,
    study_day_start,
)
from dlprep.store import DayCounts, Store

REVIEW = 2


@dataclass(frozen=True)
class TopicProgress:
    topic: str
    title: str
    questions: int
    seen: int
    mastered: int  # in review and predicted recall >= desired retention
    due_now: int
    suspended: int

    @property
    def mastery(self) -> float:
        return self.mastered / self.questions if self.questions else 0.0


@dataclass(frozen=True)
class WeakQuestion:
    id: str
    topic: str
    prompt: str
    recall: float  # predicted probability of recall now
    lapses: int
    reps: int
    demo: str


@dataclass(frozen=True)
class Progress:
    generated_at: datetime
    desired_retention: float
    total_questions: int
    reviewed_cards: int
    total_reviews: int
    due_now: int
    due_today: int
    new_available: int
    suspended: int
    leeches: list[str]
    by_state: dict[str, int]
    by_topic: list[TopicProgress]
    weakest: list[WeakQuestion]
    activity: list[tuple[date, int]]  # answers per study day, oldest first
    today: DayCounts
    orphans: list[str]  # questions with history that are no longer in the bank


def study_days(now: datetime, settings: Settings, days: int) -> list[tuple[date, datetime]]:
    """The last `days` study days as (local date, UTC start), oldest first."""
    zone = settings.zone()
    start = study_day_start(now, settings.day_starts_at, zone)
    out = []
    for _ in range(days):
        local = start.astimezone(zone) if zone else start.astimezone()
        out.append((local.date(), start))
        start = study_day_start(start - timedelta(hours=1), settings.day_starts_at, zone)
    return out[::-1]


def build_progress(
    store: Store,
    bank: Bank,
    settings: Settings,
    now: datetime,
    *,
    days: int = 14,
    weakest: int = 10,
) -> Progress:
    scheduler = Scheduler(settings)
    cards = store.cards()
    in_bank = [cards.get(q.id, CardState(q.id)) for q in bank.questions]
    next_day = next_study_day_start(now, settings.day_starts_at, settings.zone())
    recall = {c.question_id: scheduler.retrievability(c, now) for c in in_bank if not c.is_new}

    def is_due(card: CardState, until: datetime) -> bool:
        return (
            not card.is_new and card.available(now) and card.due is not None and card.due <= until
        )

    topics: dict[str, dict[str, int]] = {
        t: dict(questions=0, seen=0, mastered=0, due_now=0, suspended=0) for t in bank.topics
    }
    for question, card in zip(bank.questions, in_bank, strict=True):
        row = topics[question.topic]
        row["questions"] += 1
        row["seen"] += not card.is_new
        row["mastered"] += (
            card.state == REVIEW and recall.get(card.question_id, 0.0) >= settings.desired_retention
        )
        row["due_now"] += is_due(card, now)
        row["suspended"] += card.suspended

    seen = sorted(
        (c for c in in_bank if not c.is_new), key=lambda c: (recall[c.question_id], -c.lapses)
    )
    weak = [
        WeakQuestion(
            c.question_id,
            bank.by_id[c.question_id].topic,
            bank.by_id[c.question_id].prompt,
            recall[c.question_id],
            c.lapses,
            c.reps,
            bank.by_id[c.question_id].demo,
        )
        for c in seen[:weakest]
    ]

    day_list = study_days(now, settings, days)
    times = store.review_times_since(day_list[0][1]) if day_list else []
    edges = [start for _, start in day_list] + [next_day]
    activity = [
        (day, bisect.bisect_left(times, edges[i + 1]) - bisect.bisect_left(times, edges[i]))
        for i, (day, _) in enumerate(day_list)
    ]
    states = {name: 0 for name in STATE_NAMES.values()}
    for card in in_bank:
        states[card.state_name] += 1

    return Progress(
        generated_at=now,
        desired_retention=settings.desired_retention,
        total_questions=len(bank.questions),
        reviewed_cards=sum(not c.is_new for c in in_bank),
        total_reviews=store.review_count(),
        due_now=sum(is_due(c, now) for c in in_bank),
        due_today=sum(is_due(c, next_day) for c in in_bank),
        new_available=sum(c.is_new and c.available(now) for c in in_bank),
        suspended=sum(c.suspended for c in in_bank),
        leeches=[c.question_id for c in in_bank if c.leech],
        by_state=states,
        by_topic=[TopicProgress(t, bank.topics[t], **row) for t, row in topics.items()],
        weakest=weak,
        activity=activity,
        today=store.counts_since(edges[-2]) if day_list else store.counts_since(now),
        orphans=sorted(qid for qid in cards if qid not in bank.by_id),
    )


def progress_json(progress: Progress) -> dict:
    """The figures as plain JSON-ready data (`dlprep stats --json`)."""
    return {
        "generated_at": progress.generated_at.isoformat(),
        "desired_retention": progress.desired_retention,
        "total_questions": progress.total_questions,
        "reviewed_cards": progress.reviewed_cards,
        "total_reviews": progress.total_reviews,
        "due_now": progress.due_now,
        "due_today": progress.due_today,
        "new_available": progress.new_available,
        "suspended": progress.suspended,
        "leeches": progress.leeches,
        "by_state": progress.by_state,
        "today": asdict(progress.today),
        "by_topic": {
            t.topic: {**asdict(t), "mastery": round(t.mastery, 4)} for t in progress.by_topic
        },
        "weakest": [{**asdict(w), "recall": round(w.recall, 4)} for w in progress.weakest],
        "activity": [{"date": d.isoformat(), "reviews": n} for d, n in progress.activity],
        "orphans": progress.orphans,
    }


__all__ = ["NEW", "Progress", "TopicProgress", "WeakQuestion", "build_progress", "progress_json"]
