"""Automatic grading of `mcq` and `numeric` answers: pure functions on the typed text."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

LETTERS = "ABCDEFGH"
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class Grade:
    correct: bool
    expected: str  # the right answer as the user should see it
    given: str  # how the user's answer was understood ("" for no answer)


def parse_number(text: str) -> float | None:
    """Read a number as people type it: '1,024', '3e-4', '2/3', '12.5 px'. None if there is none."""
    cleaned = text.strip().replace(",", "").replace("_", "").replace("−", "-")
    if "/" in cleaned:
        num, _, den = cleaned.partition("/")
        top, bottom = parse_number(num), parse_number(den)
        if top is None or bottom in (None, 0):
            return None
        return top / bottom
    match = _NUMBER.match(cleaned.replace(" ", ""))
    return float(match.group(0)) if match else None


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def grade_numeric(
    text: str, expected: float, tolerance: float = 0.0, rel_tolerance: float = 0.0
) -> Grade:
    given = parse_number(text)
    shown = format_number(expected)
    if given is None:
        return Grade(False, shown, "")
    # The slack absorbs float rounding, so an answer exactly at the tolerance's edge counts.
    allowed = max(tolerance, rel_tolerance * abs(expected)) + 1e-9 * max(1.0, abs(expected))
    return Grade(
        math.isclose(given, expected, abs_tol=allowed, rel_tol=0.0), shown, format_number(given)
    )


def grade_mcq(text: str, shown_choices: list[str], correct: str) -> Grade:
    """`shown_choices` is the order shown; the answer is a letter, a number or the text."""
    right = f"{LETTERS[shown_choices.index(correct)]}) {correct}"
    answer = text.strip()
    letters = LETTERS[: len(shown_choices)]
    # Accept what the quiz shows too: "A)", "a.", "a) relu".
    label = re.match(r"^([A-Za-z])[).:]?(\s|$)", answer)
    by_text = [c for c in shown_choices if answer and answer.casefold() == c.casefold()]
    picked: str | None = None
    if by_text:  # the text itself wins, so a choice "3" is not read as the third choice
        picked = by_text[0]
    elif label and label.group(1).upper() in letters:
        picked = shown_choices[letters.index(label.group(1).upper())]
    elif answer.isdigit() and 1 <= int(answer) <= len(shown_choices):
        picked = shown_choices[int(answer) - 1]
    if picked is None:
        return Grade(False, right, "")
    return Grade(picked == correct, right, f"{LETTERS[shown_choices.index(picked)]}) {picked}")
