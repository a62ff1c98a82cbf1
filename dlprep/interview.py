"""`dlprep interview`: a timed mock interview, and its Markdown report.

An interview is planned like a real one: a warm-up question, then the core of medium ones,
then harder ones, moving across topics, each followed by one of its follow-up questions.
The learner types an answer, then ticks the key points they covered; the share of key
points covered is the question's score. Pure planning, scoring and reporting live here; the
command (dlprep/cli/interview.py) runs the session.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dlprep.questions import Question

# Minutes an interviewer gives each question, follow-up included.
MINUTES = {"easy": 4, "medium": 6, "hard": 8}
# Shares of the time by difficulty: warm up, the core, then the deep end.
SHARES = (("easy", 0.2), ("medium", 0.5), ("hard", 0.3))
# Below this share of key points a question counts as weak and becomes due in the quiz.
WEAK_BELOW = 0.6


def _interleave_topics(questions: list[Question]) -> list[Question]:
    """Reorder so that consecutive questions come from different topics where possible."""
    by_topic: dict[str, list[Question]] = {}
    for q in questions:
        by_topic.setdefault(q.topic, []).append(q)
    out = []
    while by_topic:
        for topic in list(by_topic):
            out.append(by_topic[topic].pop(0))
            if not by_topic[topic]:
                del by_topic[topic]
    return out


def plan(questions: Sequence[Question], minutes: int, rng: random.Random) -> list[Question]:
    """The questions of an interview of `minutes`: open questions only (an interviewer asks
    for explanations), easy then medium then hard, topics interleaved, within the time."""
    pools = {d: [q for q in questions if q.kind == "open" and q.difficulty == d] for d in MINUTES}
    for pool in pools.values():
        rng.shuffle(pool)
    chosen: list[Question] = []
    spare = 0.0  # time a difficulty could not use passes on to the next
    for difficulty, share in SHARES:
        budget = share * minutes + spare
        used = 0
        for q in _interleave_topics(pools[difficulty]):
            if used + MINUTES[difficulty] > budget:
                break
            chosen.append(q)
            used += MINUTES[difficulty]
        spare = budget - used
    if not chosen:  # a short interview still asks one question
        chosen = [q for d in MINUTES for q in pools[d]][:1]
    return chosen


def parse_ticks(text: str, count: int) -> set[int] | None:
    """Key points the learner covered, from '1 3', '1,3', '2-4', 'all' or 'none'/'' (1-based
    in the text, 0-based in the result); None if the text is not understood."""
    text = text.strip().lower()
    if text in ("", "none", "0", "-"):
        return set()
    if text in ("all", "a", "*"):
        return set(range(count))
    ticked: set[int] = set()
    for part in re.split(r"[\s,]+", text):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            return None
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not 1 <= low <= high <= count:
            return None
        ticked.update(range(low - 1, high))
    return ticked


@dataclass
class Answered:
    question: Question
    answer: str
    covered: set[int]
    seconds: float
    follow_up: str = ""
    follow_up_answer: str = ""

    @property
    def score(self) -> float:
        return len(self.covered) / len(self.question.key_points)

    @property
    def weak(self) -> bool:
        return self.score < WEAK_BELOW


@dataclass
class Interview:
    started: datetime
    minutes: int
    planned: list[Question]
    answered: list[Answered] = field(default_factory=list)
    ended: datetime | None = None

    @property
    def score(self) -> float:
        points = sum(len(a.question.key_points) for a in self.answered)
        return sum(len(a.covered) for a in self.answered) / points if points else 0.0


def _quote(text: str) -> list[str]:
    lines = text.strip().splitlines() or ["(no answer)"]
    return [f"> {line}" if line.strip() else ">" for line in lines]


def report(interview: Interview) -> str:
    """The session as Markdown: the score, each answer with its key points ticked or not,
    and what to review."""
    iv = interview
    ended = iv.ended or iv.started
    took = round((ended - iv.started).total_seconds() / 60)
    weak = [a for a in iv.answered if a.weak]
    lines = [
        f"# Mock interview — {iv.started:%Y-%m-%d %H:%M} UTC",
        "",
        f"**Score {100 * iv.score:.0f}%** of key points covered · {len(iv.answered)} of "
        f"{len(iv.planned)} planned questions answered · {took} of {iv.minutes} minutes.",
        "",
    ]
    if weak:
        lines += [
            "## What to review",
            "",
            f"Covered under {100 * WEAK_BELOW:.0f}% of the key points; these are now due in "
            "`dlprep quiz`:",
            "",
        ]
        for a in weak:
            demo = f" — run `dlprep demo {a.question.demo}`" if a.question.demo else ""
            lines.append(f"- `{a.question.id}` ({100 * a.score:.0f}%): {a.question.prompt}{demo}")
        lines.append("")
    for number, a in enumerate(iv.answered, start=1):
        q = a.question
        lines += [
            f"## {number}. {q.prompt}",
            "",
            f"`{q.id}` · {q.topic} · {q.difficulty} · {round(a.seconds / 60, 1):g} min · "
            f"**{100 * a.score:.0f}%**",
            "",
            "Your answer:",
            "",
            *_quote(a.answer),
            "",
            "Key points:",
            "",
        ]
        lines += [
            f"- [{'x' if i in a.covered else ' '}] {point}" for i, point in enumerate(q.key_points)
        ]
        if a.weak and q.pitfalls:
            lines += ["", "Common mistakes to avoid:", ""] + [f"- {p}" for p in q.pitfalls]
        if a.follow_up:
            lines += ["", f"Follow-up: *{a.follow_up}*", "", *_quote(a.follow_up_answer)]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
