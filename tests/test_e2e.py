"""`dlprep quiz` as a real process through a real pipe, and killed halfway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from test_cli import BANK


def _env(home):
    return {**os.environ, "DLPREP_HOME": str(home), "COLUMNS": "100", "PYTHONUNBUFFERED": "1"}


def _dlprep(*args, home, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "dlprep", *map(str, args)],
        input=stdin,
        text=True,
        capture_output=True,
        env=_env(home),
        timeout=60,
    )


def test_quiz_through_a_pipe(tmp_path):
    bank = tmp_path / "drill.yaml"
    bank.write_text(BANK)
    home = tmp_path / "home"
    done = _dlprep(
        "quiz", "--bank", bank, "--topic", "drill", home=home, stdin="an answer\n3\n\n4\nA\n\n"
    )
    assert done.returncode == 0, done.stderr
    assert "Session done: 3 answered" in done.stdout
    figures = json.loads(_dlprep("stats", "--json", "--bank", bank, home=home).stdout)
    assert figures["total_reviews"] == 3 and figures["reviewed_cards"] == 3


def _quiz_waiting_at_prompt(tmp_path, keys: str, prompt: int):
    """Start `dlprep quiz` on the drill bank, type `keys`, and wait until answer prompt
    number `prompt` is on screen. Returns the process, what it printed, and the bank."""
    bank = tmp_path / "drill.yaml"
    bank.write_text(BANK)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlprep", "quiz", "--bank", str(bank), "--topic", "drill"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path / "home"),
    )
    proc.stdin.write(keys)
    proc.stdin.flush()
    seen = ""
    deadline = time.monotonic() + 30
    while seen.count(":h help)") < prompt and time.monotonic() < deadline:
        seen += os.read(proc.stdout.fileno(), 4096).decode()
    return proc, seen, bank


def test_a_killed_quiz_keeps_every_answer_given(tmp_path):
    # Answer two cards, then sit at the third prompt.
    proc, _, bank = _quiz_waiting_at_prompt(tmp_path, "\n3\n\n4\n", prompt=3)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: a crash or a closed terminal
    proc.wait(10)
    figures = json.loads(_dlprep("stats", "--json", "--bank", bank, home=tmp_path / "home").stdout)
    assert figures["total_reviews"] == 2


def test_ctrl_c_ends_with_a_summary_and_exit_130(tmp_path):
    proc, seen, _ = _quiz_waiting_at_prompt(tmp_path, "\n3\n", prompt=2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "Session done: 1 answered" in seen + out
    assert "Traceback" not in err
