"""`dlprep stats` and `dlprep export`: where you stand, on screen or as Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlprep import render
from dlprep.cli._app import BankPaths, Json, app, open_bank, open_store, utcnow
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
    days: Annotated[int, typer.Option(min=1, max=365, help="Days of activity to show.")] = 14,
    bank: BankPaths = None,
) -> None:
    """A Markdown progress report (per-topic mastery, weakest questions, activity)."""
    from dlprep.export import markdown_report
    from dlprep.progress import build_progress

    loaded = open_bank(bank)
    with open_store() as store:
        report = markdown_report(
            build_progress(store, loaded, store.settings(), utcnow(), days=days)
        )
    if output is None:
        typer.echo(report, nl=False)
        return
    try:
        output.write_text(report, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    render.line(f"wrote {output}")
