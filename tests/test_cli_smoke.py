"""Every command exists and explains itself; --version works."""

from __future__ import annotations

from typer.testing import CliRunner

from dlprep import __version__
from dlprep.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands"):
            yield from _commands(command, path)
        else:
            yield path, command


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"dlprep {__version__}"


def test_every_command_has_help_text():
    import typer.main

    group = typer.main.get_command(app)
    paths = list(_commands(group))
    assert {p[0][0] for p in paths} >= {"quiz", "list", "show", "stats", "export", "bank", "suspend",
                                      "unsuspend", "bury", "undo", "config"}
    for path, command in paths:
        assert command.help, f"dlprep {' '.join(path)} has no help text"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output
