"""`dlprep quiz`: the study loop. Reads plain lines, so it works in a terminal and from a pipe."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from dlprep import render
from dlprep.cli._app import (
    EXIT_INTERRUPTED,
    BankPaths,
    Tags,
    Topics,
    app,
    open_bank,
    open_store,
    utcnow,
)
from dlprep.scheduler import Rating
from dlprep.session import QuizItem, QuizSession

COMMANDS = {"u": "undo", "b": "bury", "s": "suspend", "q": "quit", "h": "help", "?": "help"}


def _read(prompt: str) -> str | None:
    """One line from stdin; None at end of input (Ctrl-D, or the end of a pipe)."""
    render.prompt(prompt)
    text = sys.stdin.readline()
    if not text:
        render.line()
        return None
    return text.rstrip("\r\n")


def _command(text: str, prefixed_only: bool) -> str | None:
    """':q' (or 'q' where plain letters mean commands) -> 'quit'; None if not a command."""
    word = text.strip().lower()
    if word.startswith(":"):
        return COMMANDS.get(word[1:], "help")
    return None if prefixed_only else COMMANDS.get(word)


def _handle(command: str, session: QuizSession, item: QuizItem) -> str:
    """Carry out a command; returns 'next' (card handled), 'stay' (ask again) or 'quit'."""
    now = utcnow()
    if command == "help":
        render.quiz_help()
        return "stay"
    if command == "quit":
        session.queue.insert(0, item)
        return "quit"
    if command == "bury":
        until = session.bury(item, now)
        render.line(f"buried until {until.astimezone():%a %H:%M}", style="dim")
        return "next"
    if command == "suspend":
        session.suspend(item)
        render.line(
            "suspended (dlprep unsuspend " + item.question.id + " brings it back)", style="dim"
        )
        return "next"
    # undo: the previous card comes back first, this one right after it
    previous = session.undo(now)
    if previous is None:
        render.line("nothing to undo in this session", style="dim")
        return "stay"
    session.queue.insert(1, item)
    render.line(f"undid your answer to {previous.question.id}", style="dim")
    return "next"


def _study(session: QuizSession) -> None:
    while (item := session.next()) is not None:
        position = len(session.answered) + 1
        state = session.store.card(item.question.id).state_name
        render.card_front(item, position, position + len(session.queue), state)
        shown = time.monotonic()
        while True:
            response = _read(render.answer_prompt(item.question.kind))
            if response is None:
                session.queue.insert(0, item)
                return
            command = _command(response, prefixed_only=True)
            outcome = _handle(command, session, item) if command else "answered"
            if outcome != "stay":
                break
        if outcome == "quit":
            return
        if outcome == "next":
            continue
        grade = session.grade(item, response)
        suggested = session.suggested_rating(grade)
        render.card_back(item, grade, response)
        rating = None
        while rating is None:
            choice = _read(render.rating_prompt(session.intervals(item, utcnow()), suggested))
            if choice is None:
                session.queue.insert(0, item)
                return
            choice = choice.strip()
            if choice in ("1", "2", "3", "4"):
                rating = Rating(int(choice))
            elif choice == "":
                rating = suggested
            elif (command := _command(choice, prefixed_only=False)) is not None:
                outcome = _handle(command, session, item)
                if outcome == "quit":
                    return
                if outcome == "next":
                    break
            else:
                render.line("type 1-4, Enter for the suggested rating, or h for help", style="dim")
        if rating is None:
            continue
        now = utcnow()
        answered = session.answer(
            item,
            rating,
            now,
            response=response,
            grade=grade,
            duration_ms=round(1000 * (time.monotonic() - shown)),
        )
        render.answered(
            rating, answered.result.after.due, now, answered.result.became_leech, session.cram
        )


@app.command()
def quiz(
    topic: Topics = None,
    tag: Tags = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many cards.")] = None,
    new: Annotated[
        int | None,
        typer.Option(
            min=0, help="New cards this session (overrides what is left of today's limit)."
        ),
    ] = None,
    cram: Annotated[
        bool,
        typer.Option(
            "--cram", help="Review any cards, weakest first, without changing the schedule."
        ),
    ] = False,
    bank: BankPaths = None,
) -> None:
    """Study: due cards first, then new ones up to the daily limit. Each answer is saved at once."""
    loaded = open_bank(bank)
    with open_store() as store:
        now = utcnow()
        session = QuizSession(
            store,
            loaded,
            store.settings(),
            now,
            topics=tuple(topic or ()),
            tags=tuple(tag or ()),
            limit=limit,
            new=new,
            cram=cram,
        )
        if not session.queue:
            render.nothing_to_study(session.summary(now).next_due, now, session.new_waiting)
            return
        try:
            _study(session)
        except KeyboardInterrupt:
            render.line()
            render.session_summary(session.summary(utcnow()), utcnow())
            raise typer.Exit(EXIT_INTERRUPTED) from None
        render.session_summary(session.summary(utcnow()), utcnow())
