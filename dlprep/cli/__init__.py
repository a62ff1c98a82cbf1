"""The `dlprep` command line. Typer only: parse, call the core, hand results to `render`."""

from __future__ import annotations

# Imported for their side effect: each module registers its commands, in this order in --help.
from dlprep.cli import bank, cards, config, progress, quiz  # noqa: F401, I001
from dlprep.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
