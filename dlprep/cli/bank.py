"""`dlprep bank check`: validate question banks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dlprep import render
from dlprep.bank import bank_files, validate
from dlprep.cli._app import EXIT_ERROR, BankPaths, app, bank_paths

bank_app = typer.Typer(help="Work with question banks.", no_args_is_help=True)
app.add_typer(bank_app, name="bank")


@bank_app.command("check")
def check(
    path: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or folders to check (default: the built-in bank and yours)."),
    ] = None,
    bank: BankPaths = None,
) -> None:
    """Validate banks (schema, kinds, mcq choices, generators, duplicate ids); exit 1 on errors."""
    targets = list(path) if path else bank_paths(bank)
    files = bank_files(targets)
    result, problems = validate(files)
    if problems:
        render.bank_problems(problems)
        render.error(f"{len(problems)} problem(s) in {len(files)} file(s)")
        raise typer.Exit(EXIT_ERROR)
    render.bank_ok(len(files), len(result.questions), len(result.topics))
