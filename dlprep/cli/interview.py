"""`dlprep interview`: a timed mock interview with typed answers and self-scored key points."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Annotated

import typer

from dlprep import paths, render
from dlprep.cli._app import EXIT_INTERRUPTED, BankPaths, Topics, app, open_bank, open_store, utcnow
from dlprep.errors import UsageError
from dlprep.interview import Answered, Interview, parse_ticks, plan, report
from dlprep.scheduler import Rating, Scheduler


def _read_answer(prompt: str) -> str | None:
    """Lines until an empty line; None at the end of input before anything was typed."""
    render.prompt(prompt)
    lines: list[str] = []
    while True:
        text = sys.stdin.readline()
        if not text:
            if not lines:
                render.line()
                return None
            break
        text = text.rstrip("\r\n")
        if not text.strip():
            break
        lines.append(text)
    return "\n".join(lines)


def _read_ticks(count: int) -> set[int] | None:
    while True:
        render.prompt(render.ticks_prompt(count))
        text = sys.stdin.readline()
        if not text:
            render.line()
            return None
        ticked = parse_ticks(text, count)
        if ticked is not None:
            return ticked
        render.line(
            f"type the numbers of the points you covered (1-{count}), all or none", style="dim"
        )


def _run(interview: Interview) -> None:
    deadline = interview.started.timestamp() + 60 * interview.minutes
    for number, question in enumerate(interview.planned, start=1):
        now = utcnow()
        left = deadline - now.timestamp()
        if left <= 0:
            render.line("time is up", style="bold")
            return
        render.interview_question(question, number, len(interview.planned), left)
        answer = _read_answer("your answer (an empty line ends it)")
        if answer is None:
            return
        answered_at = utcnow()
        render.interview_key_points(question)
        covered = _read_ticks(len(question.key_points))
        if covered is None:
            return
        entry = Answered(question, answer, covered, (answered_at - now).total_seconds())
        interview.answered.append(entry)
        render.interview_scored(entry)
        if question.follow_ups:
            entry.follow_up = random.Random(question.id).choice(question.follow_ups)
            render.interview_follow_up(entry.follow_up)
            follow = _read_answer("your answer (an empty line ends it; not scored)")
            if follow is None:
                return
            entry.follow_up_answer = follow


@app.command()
def interview(
    minutes: Annotated[int, typer.Option(min=5, max=180, help="Length of the interview.")] = 30,
    topic: Topics = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report here (default: DLPREP_HOME)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Draw the same questions again.")] = None,
    bank: BankPaths = None,
) -> None:
    """A timed mock interview: questions across topics, easy to hard, each with a follow-up.
    Type your answer, tick the key points you covered; weak answers become due in the quiz,
    and a Markdown report of the session is written at the end."""
    loaded = open_bank(bank)
    questions = loaded.select(topics=topic or ())
    planned = plan(questions, minutes, random.Random(seed))
    if not planned:
        raise UsageError("no open questions to ask in these topics")
    session = Interview(utcnow(), minutes, planned)
    render.interview_intro(session)
    interrupted = False
    try:
        _run(session)
    except KeyboardInterrupt:
        interrupted = True
        render.line()
    session.ended = utcnow()
    weak = [a for a in session.answered if a.weak]
    with open_store() as store:
        scheduler = Scheduler(store.settings())
        for entry in weak:  # an answer that missed most key points counts as forgotten
            store.apply_review(
                entry.question.id,
                lambda card: scheduler.review(card, Rating.Again, session.ended),
                session.ended,
                duration_ms=round(1000 * entry.seconds),
                response=entry.answer,
            )
    target = output or paths.home() / "interviews" / f"{session.started:%Y-%m-%d-%H%M%S}.md"
    if session.answered:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(report(session), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    render.interview_summary(session, target if session.answered else None, len(weak))
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
