"""The Typer app, its error handling, and what every command shares (bank, store, clock)."""

from __future__ import annotations

import gc
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on real click
    from click import exceptions as click_exceptions

from dlprep import __version__, paths, render
from dlprep.bank import Bank, load_bank
from dlprep.errors import DlprepError
from dlprep.store import Store

NO_ARGS_IS_HELP = getattr(click_exceptions, "NoArgsIsHelpError", ())

# Exit codes, as pipx names them.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class DlprepGroup(TyperGroup):
    """Every failure a user can cause ends in one red line and exit code 1, never a traceback."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except NO_ARGS_IS_HELP as exc:
            typer.echo(exc.format_message())
            result = EXIT_OK
        except click_exceptions.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "dlprep"
            render.error(f"{exc.format_message()} (see '{where} --help')")
            result = EXIT_ERROR
        except click_exceptions.ClickException as exc:
            render.error(exc.format_message())
            result = EXIT_ERROR
        except (typer.Abort, getattr(click_exceptions, "Abort", typer.Abort)):
            result = EXIT_INTERRUPTED
        except DlprepError as exc:
            render.error(str(exc))
            result = EXIT_ERROR
        code = result if isinstance(result, int) else EXIT_OK
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=DlprepGroup,
    name="dlprep",
    help="Prepare for deep-learning interviews: a question bank, FSRS spaced repetition, "
    "and PyTorch demos that measure what the answers claim.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        render.line(f"dlprep {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """dlprep: study for deep-learning interviews in the terminal."""


BankPaths = Annotated[
    list[Path] | None,
    typer.Option(
        "--bank",
        metavar="PATH",
        help="Also load this bank (a YAML file or a folder of them); repeatable. "
        "$DLPREP_BANK adds more (separated by ':').",
    ),
]
Topics = Annotated[
    list[str] | None, typer.Option("--topic", "-t", help="Only this topic (repeatable).")
]
Tags = Annotated[
    list[str] | None, typer.Option("--tag", help="Only questions with this tag (repeatable).")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def bank_paths(extra: list[Path] | None) -> list[Path]:
    return [paths.builtin_content_dir(), *paths.user_bank_paths(), *(extra or [])]


def open_bank(extra: list[Path] | None = None) -> Bank:
    bank = load_bank(bank_paths(extra), cache_dir=paths.cache_dir())
    # The bank lives as long as the command: keep the cycle collector from rescanning its
    # objects at every full collection (a third of `stats` time with 100,000 questions).
    gc.freeze()
    return bank


def open_store() -> Store:
    return Store(paths.database_path())


def utcnow() -> datetime:
    """The one place dlprep reads the clock."""
    return datetime.now(timezone.utc)
