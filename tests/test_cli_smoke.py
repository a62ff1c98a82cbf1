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
    expected = {
        "quiz",
        "list",
        "show",
        "stats",
        "export",
        "bank",
        "suspend",
        "unsuspend",
        "bury",
        "unbury",
        "undo",
        "config",
    }
    assert {p[0][0] for p in paths} >= expected
    for path, command in paths:
        assert command.help, f"dlprep {' '.join(path)} has no help text"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_the_quiz_path_and_demo_list_never_import_torch(tmp_path):
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dlprep.cli import app\n"
        "r = CliRunner()\n"
        "runs = [['quiz', '--limit', '1'], ['list'], ['stats'], ['show', 'conv-output-width'],\n"
        "        ['demo', '--list']]\n"
        "for args in runs:\n"
        "    assert r.invoke(app, args, input='\\n3\\n').exit_code == 0, args\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'rich.markdown' in sys.modules  # the answer was rendered\n"
    )
    env = {**os.environ, "DLPREP_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
