"""The bank as an Anki deck (`dlprep export anki`), built with genanki.

One note per question: the prompt on the front; the answer, key points, pitfalls and the
demo command on the back. A note's GUID comes from the question id alone, so exporting again
after the bank changed updates the notes in Anki instead of duplicating them; deck and model
ids are fixed for the same reason. Each topic becomes a subdeck (`dlprep::cnn`).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from pathlib import Path

from dlprep.generators import draw
from dlprep.questions import Question

# Fixed, random-looking ids (Anki wants 32/64-bit integers); never change them: Anki matches
# the model and the decks of a re-import by these.
MODEL_ID = 1_607_392_319
MODEL_NAME = "dlprep question"
FIELDS = ("Prompt", "Answer", "KeyPoints", "Pitfalls", "Demo", "Topic", "Id")

FRONT = '<div class="prompt">{{Prompt}}</div>'
BACK = """{{FrontSide}}
<hr id="answer">
<div class="answer">{{Answer}}</div>
{{#KeyPoints}}<h4>Key points</h4><ul class="points">{{KeyPoints}}</ul>{{/KeyPoints}}
{{#Pitfalls}}<h4>Pitfalls</h4><ul class="pitfalls">{{Pitfalls}}</ul>{{/Pitfalls}}
{{#Demo}}<p class="demo">See it measured: <code>{{Demo}}</code></p>{{/Demo}}
<p class="meta">{{Topic}} · {{Id}}</p>"""
CSS = """.card { font-family: -apple-system, "Segoe UI", sans-serif; font-size: 18px;
  text-align: left; max-width: 46em; margin: auto; line-height: 1.45; }
.prompt { font-weight: 600; }
code { font-family: ui-monospace, monospace; font-size: 90%; }
.meta { color: #888; font-size: 75%; }
h4 { margin-bottom: 0.2em; }"""


def stable_id(*parts: str) -> int:
    """A 62-bit integer from text: the same parts always give the same id."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def note_guid(question_id: str) -> str:
    """The note's GUID: from the question id only, so edits update the same note."""
    import genanki

    return genanki.guid_for("dlprep", question_id)


_MATH_BLOCK = re.compile(r"\$\$(.+?)\$\$", re.S)
_MATH_INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$")
_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LIST_ITEM = re.compile(r"\s*([-*]|\d+\.)\s+(.*)")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![*\w])")


def markdown_to_html(text: str) -> str:
    """The Markdown the bank uses, as Anki HTML: paragraphs, lists, **bold**, *italic*,
    `code`, and $...$ / $$...$$ as MathJax's \\(...\\) and \\[...\\]."""
    maths: list[str] = []

    def keep(latex: str, display: bool) -> str:
        latex = html.escape(latex, quote=False)
        maths.append(f"\\[{latex}\\]" if display else f"\\({latex}\\)")
        return f"\x00{len(maths) - 1}\x00"

    text = _MATH_BLOCK.sub(lambda m: keep(m.group(1), True), text)
    text = _MATH_INLINE.sub(lambda m: keep(m.group(1), False), text)
    text = html.escape(text, quote=False)
    text = _CODE.sub(r"<code>\1</code>", text)
    text = _BOLD.sub(r"<b>\1</b>", text)
    text = _ITALIC.sub(r"<i>\1</i>", text)

    blocks = []
    for block in re.split(r"\n\s*\n", text.strip()):
        parts: list[tuple[str, list]] = []  # ("p", lines) or ("ul"/"ol", items of lines)
        for line in block.splitlines():
            item = _LIST_ITEM.match(line)
            if item:
                tag = "ol" if item.group(1)[0].isdigit() else "ul"
                if parts and parts[-1][0] == tag:
                    parts[-1][1].append([item.group(2)])
                else:
                    parts.append((tag, [[item.group(2)]]))
            elif line[:1].isspace() and parts and parts[-1][0] != "p":
                parts[-1][1][-1].append(line.strip())  # an item continued on the next line
            elif parts and parts[-1][0] == "p":
                parts[-1][1].append(line.strip())
            else:
                parts.append(("p", [line.strip()]))
        for tag, content in parts:
            if tag == "p":
                blocks.append(f"<p>{' '.join(content)}</p>")
            else:
                items = "".join(f"<li>{' '.join(lines)}</li>" for lines in content)
                blocks.append(f"<{tag}>{items}</{tag}>")
    out = "\n".join(blocks)
    return re.sub("\x00(\\d+)\x00", lambda m: maths[int(m.group(1))], out)


def _items(texts: Sequence[str]) -> str:
    return "".join(
        f"<li>{markdown_to_html(t).removeprefix('<p>').removesuffix('</p>')}</li>" for t in texts
    )


def note_fields(question: Question) -> list[str]:
    """The seven fields of a question's note."""
    prompt, answer = question.prompt, question.answer
    if question.generator:
        # a parametric question: one fixed draw, seeded by the id, with its worked answer
        d = draw(question.generator, stable_id(question.id) % 2**32)
        prompt = prompt.format(**d.params)
        unit = f" {question.unit}" if question.unit else ""
        answer = f"**{d.value:g}{unit}** — {d.working}\n\n{answer}"
    elif question.kind == "numeric" and question.value is not None:
        unit = f" {question.unit}" if question.unit else ""
        answer = f"**{question.value:g}{unit}**\n\n{answer}"
    front = markdown_to_html(prompt)
    if question.kind == "mcq":
        choices = "".join(f"<li>{html.escape(c)}</li>" for c in question.choices)
        front += f'<ul class="choices">{choices}</ul>'
        answer = f"**{question.correct}**\n\n{answer}"
    return [
        front,
        markdown_to_html(answer),
        _items(question.key_points),
        _items(question.pitfalls),
        f"dlprep demo {question.demo}" if question.demo else "",
        question.topic,
        question.id,
    ]


def write_package(
    questions: Sequence[Question], topics: dict[str, str], path: Path
) -> dict[str, int]:
    """Write an .apkg with one subdeck per topic; returns notes per topic."""
    import genanki

    model = genanki.Model(
        MODEL_ID,
        MODEL_NAME,
        fields=[{"name": name} for name in FIELDS],
        templates=[{"name": "Question", "qfmt": FRONT, "afmt": BACK}],
        css=CSS,
    )
    decks: dict[str, genanki.Deck] = {}
    counts: dict[str, int] = {}
    for question in questions:
        if question.topic not in decks:
            title = topics.get(question.topic, question.topic)
            decks[question.topic] = genanki.Deck(
                stable_id("dlprep deck", question.topic), f"dlprep::{title}"
            )
        tags = ["dlprep", f"dlprep::{question.topic}", f"difficulty::{question.difficulty}"]
        tags += [f"dlprep::tag::{tag}" for tag in question.tags]
        decks[question.topic].add_note(
            genanki.Note(
                model=model, fields=note_fields(question), tags=tags, guid=note_guid(question.id)
            )
        )
        counts[question.topic] = counts.get(question.topic, 0) + 1
    genanki.Package(list(decks.values())).write_to_file(str(path))
    return counts
