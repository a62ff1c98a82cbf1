"""`dlprep stats`, `dlprep export` and `dlprep import`: where you stand, on screen, as a
Markdown report, or as a backup you can restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlprep import render
from dlprep.cli._app import BankPaths, Json, Topics, app, open_bank, open_store, utcnow
from dlprep.errors import UsageError

# dlprep.progress and dlprep.export are imported inside the commands: `dlprep quiz` loads
# this module too, and its first prompt should not wait for them.

export_app = typer.Typer(help="Export your progress.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@app.command()
def stats(json: Json = False, bank: BankPaths = None) -> None:
    """Cards by state, due counts, mastery per topic and recent activity."""
    from dlprep.progress import build_progress, progress_json

    loaded = open_bank(bank)
    with open_store() as store:
        progress = build_progress(store, loaded, store.settings(), utcnow())
    if json:
        render.print_json(progress_json(progress))
    else:
        render.stats(progress)


@export_app.command("markdown")
def export_markdown(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
    days: Annotated[
        int, typer.Option(min=1, max=365, help="The period: days of activity and of retention.")
    ] = 30,
    topic: Topics = None,
    bank: BankPaths = None,
) -> None:
    """A Markdown progress report: summary, retention, per-topic mastery, weakest questions,
    the forecast and activity as charts GitHub renders, and a section per topic."""
    from dlprep.export import markdown_report
    from dlprep.progress import build_progress

    loaded = open_bank(bank)
    loaded.select(topics=topic or ())  # an unknown topic is an error before any work
    with open_store() as store:
        progress = build_progress(
            store, loaded, store.settings(), utcnow(), days=days, retention_days=days
        )
    _write_output(markdown_report(progress, loaded, topics=topic or ()), output)


def _write_output(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    render.line(f"wrote {output}")


Output = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file instead of standard output."),
]


@export_app.command("json")
def export_json(output: Output = None) -> None:
    """A lossless backup of all progress (review log, card states, settings)."""
    from dlprep.backup import export_json as dump

    with open_store() as store:
        text = dump(store, utcnow())
    _write_output(text, output)


@export_app.command("csv")
def export_csv(output: Output = None, bank: BankPaths = None) -> None:
    """One row per question with its state, recall and due date, for spreadsheets."""
    from dlprep.export import csv_rows, csv_text
    from dlprep.scheduler import Scheduler

    loaded = open_bank(bank)
    with open_store() as store:
        scheduler = Scheduler(store.settings())
        rows = csv_rows(loaded, store.cards(), store.last_ratings(), scheduler, utcnow())
    _write_output(csv_text(rows), output)


@export_app.command("anki")
def export_anki(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The .apkg file to write.", show_default=False)
    ],
    topic: Topics = None,
    bank: BankPaths = None,
) -> None:
    """An Anki deck: one note per question, one subdeck per topic; re-exporting updates the
    notes already in Anki instead of duplicating them."""
    from dlprep.anki import write_package

    if output.suffix != ".apkg":
        raise UsageError(f"{output}: an Anki package must end in .apkg")
    loaded = open_bank(bank)
    questions = loaded.select(topics=topic or ())
    try:
        counts = write_package(questions, loaded.topics, output)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    render.line(f"wrote {output}: {sum(counts.values())} notes in {len(counts)} decks")


import_app = typer.Typer(help="Import progress.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("json")
def import_json(
    file: Annotated[Path, typer.Argument(help="A backup written by 'dlprep export json'.")],
) -> None:
    """Restore a backup into an empty progress database (validated first; all or nothing)."""
    from dlprep.backup import import_json as restore

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"cannot read {file}: {reason}") from None
    with open_store() as store:
        backup = restore(store, text, str(file))
    render.line(
        f"imported {len(backup.reviews)} reviews of {len(backup.cards)} cards into {store.path}"
    )
