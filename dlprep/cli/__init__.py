"""The `dlprep` command line. Typer only: parse, call the core, hand results to `render`."""

# ruff: noqa: I001, F401  (the order of these imports is the order of the commands in --help)
from __future__ import annotations

from dlprep.cli import quiz, interview, demo, cards, progress, optimize, bank, config
from dlprep.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
