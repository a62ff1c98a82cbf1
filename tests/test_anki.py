"""`dlprep export anki`: a package Anki can open, one note per question, and GUIDs that stay
the same when the bank changes, so a re-export updates notes instead of duplicating them."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

import pytest
from conftest import make_bank, make_question
from typer.testing import CliRunner

from dlprep import paths
from dlprep.anki import markdown_to_html, write_package
from dlprep.bank import load_bank
from dlprep.cli import app

runner = CliRunner()


def read_package(path: Path, tmp_path: Path) -> dict:
    """The notes and decks of an .apkg, read from its SQLite collection as Anki would."""
    with zipfile.ZipFile(path) as package:
        package.extract("collection.anki2", tmp_path)
    db = sqlite3.connect(tmp_path / "collection.anki2")
    notes = {}
    for guid, flds, tags in db.execute("SELECT guid, flds, tags FROM notes"):
        fields = flds.split("\x1f")
        notes[fields[6]] = {"guid": guid, "fields": fields, "tags": tags.split()}
    cards = db.execute("SELECT COUNT(*) FROM cards").fetchone()[0]
    decks_json = db.execute("SELECT decks FROM col").fetchone()[0]
    db.close()
    return {"notes": notes, "cards": cards, "decks": decks_json}


def test_the_shipped_bank_exports_one_note_per_question(tmp_path):
    bank = load_bank([paths.builtin_content_dir()])
    out = tmp_path / "dlprep.apkg"
    counts = write_package(bank.questions, bank.topics, out)
    package = read_package(out, tmp_path)
    assert set(package["notes"]) == {q.id for q in bank.questions}
    assert package["cards"] == len(bank.questions)  # one card (front/back) per note
    assert sum(counts.values()) == len(bank.questions)
    for title in bank.topics.values():
        assert f"dlprep::{title}" in package["decks"]
    q = bank.questions[0]
    front, back, points, _, demo, topic, qid = package["notes"][q.id]["fields"]
    assert qid == q.id and topic == q.topic
    assert demo == f"dlprep demo {q.demo}"
    assert points.count("<li>") == len(q.key_points)
    assert "{" not in front  # parametric prompts are filled in


def test_re_exporting_after_an_edit_keeps_every_guid(tmp_path):
    before = make_bank([make_question("a", answer="Old answer."), make_question("b")])
    after = make_bank(
        [make_question("a", answer="A better answer.", prompt="Reworded?"), make_question("b")]
    )
    write_package(before.questions, before.topics, tmp_path / "1.apkg")
    first = read_package(tmp_path / "1.apkg", tmp_path / "x")
    write_package(after.questions, after.topics, tmp_path / "2.apkg")
    second = read_package(tmp_path / "2.apkg", tmp_path / "y")
    assert {k: v["guid"] for k, v in first["notes"].items()} == {
        k: v["guid"] for k, v in second["notes"].items()
    }
    assert "A better answer." in second["notes"]["a"]["fields"][1]
    assert first["notes"]["a"]["guid"] != first["notes"]["b"]["guid"]


def test_mcq_and_numeric_backs_give_the_answer(tmp_path):
    bank = make_bank(
        [
            make_question("pick", kind="mcq", choices=["x", "y"], correct="y"),
            make_question("number", kind="numeric", value=42, unit="px"),
        ]
    )
    write_package(bank.questions, bank.topics, tmp_path / "d.apkg")
    notes = read_package(tmp_path / "d.apkg", tmp_path)["notes"]
    assert "<li>x</li><li>y</li>" in notes["pick"]["fields"][0]
    assert notes["pick"]["fields"][1].startswith("<p><b>y</b></p>")
    assert notes["number"]["fields"][1].startswith("<p><b>42 px</b></p>")


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("a **b** `c<d>` $x<y$", "<p>a <b>b</b> <code>c&lt;d&gt;</code> \\(x&lt;y\\)</p>"),
        ("Lead:\n- one\n  more\n- two", "<p>Lead:</p>\n<ul><li>one more</li><li>two</li></ul>"),
        ("1. first\n2. second", "<ol><li>first</li><li>second</li></ol>"),
        ("$$\\sum_i x_i$$", "<p>\\[\\sum_i x_i\\]</p>"),
        ("costs $5 and $6", "<p>costs $5 and $6</p>"),  # prices are not maths
    ],
)
def test_markdown_becomes_anki_html(markdown, html):
    assert markdown_to_html(markdown) == html


def test_the_cli_writes_one_topic_and_refuses_a_wrong_suffix(tmp_path):
    out = tmp_path / "cnn.apkg"
    result = runner.invoke(app, ["export", "anki", "-o", str(out), "--topic", "cnn"])
    assert result.exit_code == 0, result.output
    notes = read_package(out, tmp_path)["notes"]
    bank = load_bank([paths.builtin_content_dir()])
    assert set(notes) == {q.id for q in bank.questions if q.topic == "cnn"}
    result = runner.invoke(app, ["export", "anki", "-o", str(tmp_path / "deck.zip")])
    assert result.exit_code == 1 and "must end in .apkg" in result.output
    result = runner.invoke(app, ["export", "anki", "-o", str(out), "--topic", "nope"])
    assert result.exit_code == 1 and "no topic 'nope'" in result.output
