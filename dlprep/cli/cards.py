"""Browse and manage questions: list, show, suspend, unsuspend, bury, unbury, undo."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from dlprep import render
from dlprep.bank import dump_question
from dlprep.cli._app import BankPaths, Json, Tags, Topics, app, open_bank, open_store, utcnow
from dlprep.scheduler import CardState, study_day

Ids = Annotated[
    list[str], typer.Argument(help="Question ids (see 'dlprep list').", show_default=False)
]


@app.command("list")
def list_questions(
    topic: Topics = None, tag: Tags = None, json: Json = False, bank: BankPaths = None
) -> None:
    """List questions with their progress."""
    questions = open_bank(bank).select(topic or (), tag or ())
    with open_store() as store:
        cards = store.cards()
    now = utcnow()
    rows = []
    for q in questions:
        card = cards.get(q.id)
        state = "new" if card is None else state_label(card, now)
        due = card.due.isoformat(timespec="minutes") if card is not None and card.due else ""
        rows.append(
            {
                "id": q.id,
                "topic": q.topic,
                "kind": q.kind,
                "difficulty": q.difficulty,
                "tags": q.tags,
                "demo": q.demo,
                "state": state,
                "due": due,
                "prompt": q.prompt,
            }
        )
    if json:
        render.print_json(rows)
    else:
        render.question_table(rows)


def state_label(card: CardState, now: datetime) -> str:
    """'review', 'review (leech, suspended)', 'learning (buried)': as list and show say it."""
    state = card.state_name
    if card.leech:
        return state + (" (leech, suspended)" if card.suspended else " (leech)")
    if card.suspended:
        return state + " (suspended)"
    if not card.available(now):
        return state + " (buried)"
    return state


@app.command()
def show(
    question_id: Annotated[str, typer.Argument(metavar="ID", help="A question id.")],
    json: Json = False,
    bank: BankPaths = None,
) -> None:
    """Show a question with its answer, key points, references and your history."""
    loaded = open_bank(bank)
    question = loaded.get(question_id)
    with open_store() as store:
        card = store.card(question_id)
        history = store.history(question_id)
    due = card.due.isoformat(timespec="minutes") if card.due else "-"
    if json:
        render.print_json(
            {
                **dump_question(question),
                "state": card.state_name,
                "due": due,
                "reps": card.reps,
                "lapses": card.lapses,
                "suspended": card.suspended,
                "leech": card.leech,
            }
        )
        return
    render.question_detail(
        question,
        state_label(card, utcnow()),
        due,
        loaded.location(question_id),
        history,
    )


def _known(question_ids: list[str], bank: BankPaths) -> list[str]:
    loaded = open_bank(bank)
    for qid in question_ids:
        loaded.get(qid)  # raises NotFoundError, with suggestions, before anything is written
    return question_ids


@app.command()
def suspend(question_id: Ids, bank: BankPaths = None) -> None:
    """Suspend questions: they leave the quiz until unsuspended."""
    with open_store() as store:
        store.set_suspended(_known(question_id, bank), True)
    render.line(f"suspended {len(question_id)} question(s)")


@app.command()
def unsuspend(question_id: Ids, bank: BankPaths = None) -> None:
    """Bring suspended questions (leeches too) back into the quiz."""
    with open_store() as store:
        store.set_suspended(_known(question_id, bank), False)
    render.line(f"unsuspended {len(question_id)} question(s)")


@app.command()
def bury(question_id: Ids, bank: BankPaths = None) -> None:
    """Hide questions until the next study day."""
    now = utcnow()
    with open_store() as store:
        _, until = study_day(now, store.settings())
        store.bury(_known(question_id, bank), until)
    render.line(f"buried {len(question_id)} question(s) until {until.astimezone():%Y-%m-%d %H:%M}")


@app.command()
def unbury(question_id: Ids, bank: BankPaths = None) -> None:
    """Bring buried questions back today."""
    with open_store() as store:
        store.bury(_known(question_id, bank), None)
    render.line(f"unburied {len(question_id)} question(s)")


@app.command()
def undo() -> None:
    """Undo the last answer given (in any session): the card goes back to how it was."""
    now = utcnow()
    with open_store() as store:
        last = store.last_review()
        if last is None:
            render.line("nothing to undo")
            return
        store.undo(last.id, now)
    render.line(
        f"undid the answer to {last.question_id} "
        f"given {last.reviewed_at.astimezone():%Y-%m-%d %H:%M}"
    )
