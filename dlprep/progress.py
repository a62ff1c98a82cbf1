"""Where the learner stands: counts, per-topic mastery, weakest questions, recent activity.

Pure computation over what the store and the bank return; `dlprep stats` renders it and
`export.markdown_report` writes it out.
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from dlprep.bank import Bank
from dlprep.config import Settings
from dlprep.scheduler import (
    NEW,
    STATE_NAMES,
    Scheduler,
    study_day,
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
    """One pass over the bank and the stored cards (100,000 cards take well under a second)."""
    scheduler = Scheduler(settings)
    _, next_day = study_day(now, settings)
    stored = {c.question_id: c for c in store.card_summaries(now, next_day)}

    topics = {t: dict(questions=0, seen=0, mastered=0, due_now=0, suspended=0) for t in bank.topics}
    by_state = dict.fromkeys(STATE_NAMES, 0)
    new_available = due_today = 0
    leeches: list[str] = []
    studied: list[tuple[float, int, str]] = []  # (recall, -lapses, id), to find the weakest
    decay, factor = scheduler.curve()  # inlined below: this loop runs once per card
    retention = settings.desired_retention
    for question in bank.questions:
        row = topics[question.topic]
        row["questions"] += 1
        card = stored.get(question.id)
        if card is None:
            new_available += 1
            continue
        if card.suspended:
            row["suspended"] += 1
        if card.state == NEW:
            new_available += card.available
            continue
        recall = (1 + factor * card.elapsed_days / card.stability) ** decay
        studied.append((recall, -card.lapses, question.id))
        by_state[card.state] += 1
        row["seen"] += 1
        if card.state == REVIEW and recall >= retention:
            row["mastered"] += 1
        if card.due_now:
            row["due_now"] += 1
        if card.due_today:
            due_today += 1
        if card.leech:
            leeches.append(question.id)
    by_state[NEW] = len(bank.questions) - len(studied)

    weak = []
    for recall, _, qid in heapq.nsmallest(weakest, studied):
        question, card = bank.by_id[qid], stored[qid]
        weak.append(
            WeakQuestion(
                qid, question.topic, question.prompt, recall, card.lapses, card.reps, question.demo
            )
        )

    day_list = study_days(now, settings, days)
    edges = [start for _, start in day_list] + [next_day]
    times = store.review_times_since(edges[0])
    activity = [
        (day, bisect.bisect_left(times, edges[i + 1]) - bisect.bisect_left(times, edges[i]))
        for i, (day, _) in enumerate(day_list)
    ]
    return Progress(
        generated_at=now,
        desired_retention=settings.desired_retention,
        total_questions=len(bank.questions),
        reviewed_cards=len(studied),
        total_reviews=store.review_count(),
        due_now=sum(row["due_now"] for row in topics.values()),
        due_today=due_today,
        new_available=new_available,
        suspended=sum(row["suspended"] for row in topics.values()),
        leeches=leeches,
        by_state={STATE_NAMES[state]: n for state, n in by_state.items()},
        by_topic=[TopicProgress(t, bank.topics[t], **row) for t, row in topics.items()],
        weakest=weak,
        activity=activity,
        today=store.counts_since(edges[-2]),
        orphans=sorted(qid for qid in stored if qid not in bank.by_id),
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
