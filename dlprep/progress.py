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
    next_study_day_start,
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
    weakest: tuple[str, ...] = ()  # ids of its studied questions with the lowest recall now

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
class Retention:
    """Answers to cards in review: how many passed (not Again) against FSRS's prediction."""

    label: str  # a study day (ISO date) or a bucket of days since the previous review
    answers: int
    passed: int
    predicted_sum: float  # sum of the recall FSRS predicted at each answer

    @property
    def true_retention(self) -> float | None:
        return self.passed / self.answers if self.answers else None

    @property
    def predicted(self) -> float | None:
        return self.predicted_sum / self.answers if self.answers else None


# Buckets of days since the previous review: (first day, label)
INTERVAL_BUCKETS = (
    (0, "same day"),
    (1, "1 d"),
    (2, "2-3 d"),
    (4, "4-7 d"),
    (8, "8-14 d"),
    (15, "15-30 d"),
    (31, "31-90 d"),
    (91, "91+ d"),
)


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
    retention_days: int  # the retention figures cover this many study days
    retention: Retention  # all of them together
    retention_by_day: list[Retention]  # oldest first
    retention_by_interval: list[Retention]  # INTERVAL_BUCKETS with answers
    forecast: list[tuple[date, int]]  # cards due per coming study day; today has the overdue
    streak: int  # study days in a row with answers, up to today (or yesterday)
    longest_streak: int  # the longest run within the calendar
    calendar: list[tuple[date, int]]  # answers per study day over the last year, oldest first


def study_days(
    now: datetime, settings: Settings, days: int, ahead: bool = False
) -> list[tuple[date, datetime]]:
    """`days` study days as (local date, UTC start) in time order: the last ones up to
    today, or with `ahead` today and the ones after it."""
    zone = settings.zone()
    start = study_day_start(now, settings.day_starts_at, zone)
    out = []
    for _ in range(days):
        local = start.astimezone(zone) if zone else start.astimezone()
        out.append((local.date(), start))
        if ahead:
            start = next_study_day_start(start, settings.day_starts_at, zone)
        else:
            start = study_day_start(start - timedelta(hours=1), settings.day_starts_at, zone)
    return out if ahead else out[::-1]


def _per_day(
    rows: list[tuple], edges: list[datetime], key: int, clamp: bool = False
) -> list[list[float]]:
    """Sum rows keyed by UTC hour (or minute) text into the study days between `edges`:
    one list of summed values per day. Rows outside the edges are dropped, or with `clamp`
    added to the first or last day."""
    days = len(edges) - 1
    sums: list[list[float]] = [[0] * (len(rows[0]) - 1) if rows else [] for _ in range(days)]
    suffix = ":00+00:00" if key == 13 else "+00:00"
    for text, *values in rows:
        index = bisect.bisect_right(edges, datetime.fromisoformat(text + suffix)) - 1
        if not 0 <= index < days:
            if not clamp:
                continue
            index = min(max(index, 0), days - 1)
        target = sums[index]
        for i, value in enumerate(values):
            target[i] += value or 0
    return sums


def _key_length(edges: list[datetime]) -> int:
    """Group times by hour when every study day starts on the hour (in UTC), else by minute."""
    return 13 if all(e.minute == 0 and e.second == 0 for e in edges) else 16


def _streaks(counts: list[int]) -> tuple[int, int]:
    """(current, longest) runs of days with answers; today not studied yet keeps the run."""
    longest = run = 0
    for n in counts:
        run = run + 1 if n else 0
        longest = max(longest, run)
    current = 0
    days = counts[:-1] if counts and not counts[-1] else counts
    for n in reversed(days):
        if not n:
            break
        current += 1
    return current, longest


def build_progress(
    store: Store,
    bank: Bank,
    settings: Settings,
    now: datetime,
    *,
    days: int = 14,
    weakest: int = 10,
    retention_days: int = 30,
    forecast_days: int = 30,
    calendar_days: int = 365,
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

    per_topic: dict[str, list[tuple[float, int, str]]] = {t: [] for t in topics}
    for entry in studied:
        per_topic[bank.by_id[entry[2]].topic].append(entry)
    for topic, entries in per_topic.items():
        topics[topic]["weakest"] = tuple(qid for *_, qid in heapq.nsmallest(3, entries))
    weak = []
    for recall, _, qid in heapq.nsmallest(weakest, studied):
        question, card = bank.by_id[qid], stored[qid]
        weak.append(
            WeakQuestion(
                qid, question.topic, question.prompt, recall, card.lapses, card.reps, question.demo
            )
        )

    # Per study day, from counts SQL groups by UTC hour (study days start at a local hour).
    span = max(days, calendar_days, retention_days)
    day_list = study_days(now, settings, span)
    edges = [start for _, start in day_list] + [next_day]
    key = _key_length(edges)
    answered = _per_day(store.answers_by_hour(edges[0], key), edges, key)
    calendar = [
        (day, int(n[0]) if n else 0) for (day, _), n in zip(day_list, answered, strict=True)
    ]
    activity = calendar[-days:]
    streak, longest = _streaks([n for _, n in calendar[-calendar_days:]])

    first = len(day_list) - retention_days
    recent = edges[first:]
    by_day = _per_day(store.retention_by_hour(recent[0], key), recent, key)
    retention_by_day = [
        Retention(day.isoformat(), *((int(v[0]), int(v[1]), v[2]) if v else (0, 0, 0.0)))
        for (day, _), v in zip(day_list[first:], by_day, strict=True)
    ]
    buckets = store.retention_by_interval(recent[0], [start for start, _ in INTERVAL_BUCKETS])
    retention_by_interval = [
        Retention(INTERVAL_BUCKETS[b][1], n, ok, predicted)
        for b, n, ok, predicted in sorted(buckets)
    ]
    retention = Retention(
        f"last {retention_days} days",
        sum(r.answers for r in retention_by_interval),
        sum(r.passed for r in retention_by_interval),
        sum(r.predicted_sum for r in retention_by_interval),
    )

    coming = study_days(now, settings, forecast_days, ahead=True)
    ahead = [start for _, start in coming]
    ahead.append(next_study_day_start(ahead[-1], settings.day_starts_at, settings.zone()))
    key_ahead = _key_length(ahead)
    due = _per_day(store.due_by_hour(ahead[-1], key_ahead), ahead, key_ahead, clamp=True)
    forecast = [(day, int(n[0]) if n else 0) for (day, _), n in zip(coming, due, strict=True)]
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
        retention_days=retention_days,
        retention=retention,
        retention_by_day=retention_by_day,
        retention_by_interval=retention_by_interval,
        forecast=forecast,
        streak=streak,
        longest_streak=longest,
        calendar=calendar[-calendar_days:],
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
        "retention": {
            "days": progress.retention_days,
            "overall": _retention_json(progress.retention),
            "by_day": [_retention_json(r) for r in progress.retention_by_day],
            "by_interval": [_retention_json(r) for r in progress.retention_by_interval],
        },
        "forecast": [{"date": d.isoformat(), "due": n} for d, n in progress.forecast],
        "streak": {"current": progress.streak, "longest": progress.longest_streak},
        "calendar": [{"date": d.isoformat(), "reviews": n} for d, n in progress.calendar],
    }


def _retention_json(r: Retention) -> dict:
    def rounded(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "label": r.label,
        "answers": r.answers,
        "passed": r.passed,
        "true_retention": rounded(r.true_retention),
        "predicted_retention": rounded(r.predicted),
    }


__all__ = [
    "NEW",
    "Progress",
    "Retention",
    "TopicProgress",
    "WeakQuestion",
    "build_progress",
    "progress_json",
]
