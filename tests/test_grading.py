"""Auto-grading of typed answers: numbers as people type them, and mcq picks by letter, number
or text in the order the choices were shown."""

from __future__ import annotations

import pytest

from dlprep.grading import grade_mcq, grade_numeric, parse_number

# -- parse_number ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,024", 1024),
        ("3e-4", 3e-4),
        ("2/3", 2 / 3),
        ("12.5 px", 12.5),
        ("−3", -3),  # U+2212 MINUS SIGN, as copied from a rendered formula
        ("  42  ", 42),
        ("-0.5", -0.5),
        (".5", 0.5),
        ("1_000", 1000),
        ("6 / 4", 1.5),
    ],
)
def test_parse_number(text, expected):
    assert parse_number(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text", ["", "   ", "abc", "px 12", "1/0", "1/x", "/"])
def test_parse_number_none(text):
    assert parse_number(text) is None


# -- grade_numeric ---------------------------------------------------------------------------


def test_numeric_exact():
    grade = grade_numeric("112", 112.0)
    assert grade.correct
    assert grade.expected == "112"
    assert grade.given == "112"


def test_numeric_exact_without_tolerance_rejects_near_miss():
    assert not grade_numeric("113", 112.0).correct
    assert not grade_numeric("111.9", 112.0).correct


def test_numeric_absolute_tolerance():
    assert grade_numeric("0.745", 0.75, tolerance=0.01).correct
    assert grade_numeric("0.758", 0.75, tolerance=0.01).correct
    assert not grade_numeric("0.77", 0.75, tolerance=0.01).correct


def test_numeric_relative_tolerance():
    assert grade_numeric("1,010", 1000.0, rel_tolerance=0.02).correct
    assert grade_numeric("985", 1000.0, rel_tolerance=0.02).correct
    assert not grade_numeric("1,030", 1000.0, rel_tolerance=0.02).correct


def test_numeric_outside_both_tolerances():
    grade = grade_numeric("130", 100.0, tolerance=5, rel_tolerance=0.1)
    assert not grade.correct
    assert grade.given == "130"
    assert grade.expected == "100"
    # The larger of the two tolerances applies.
    assert grade_numeric("109", 100.0, tolerance=5, rel_tolerance=0.1).correct
    assert grade_numeric("95", 100.0, tolerance=6, rel_tolerance=0.01).correct


def test_numeric_unparseable():
    for text in ("", "no idea", "1/0"):
        grade = grade_numeric(text, 56.0)
        assert not grade.correct
        assert grade.given == ""
        assert grade.expected == "56"


def test_numeric_fraction_and_unit():
    assert grade_numeric("2/3", 0.6667, tolerance=1e-3).correct
    assert grade_numeric("56 pixels", 56.0).correct


# -- grade_mcq -------------------------------------------------------------------------------

CHOICES = ["ReLU", "Leaky ReLU (negative_slope=0.01)", "Sigmoid", "GELU"]


@pytest.mark.parametrize("answer", ["A", "a", " a ", "1", "relu", "ReLU", "RELU"])
def test_mcq_right_pick(answer):
    grade = grade_mcq(answer, CHOICES, "ReLU")
    assert grade.correct
    assert grade.given == "A) ReLU"
    assert grade.expected == "A) ReLU"


@pytest.mark.parametrize("answer", ["c", "C", "3", "sigmoid"])
def test_mcq_wrong_pick_names_it(answer):
    grade = grade_mcq(answer, CHOICES, "ReLU")
    assert not grade.correct
    assert grade.given == "C) Sigmoid"
    assert grade.expected == "A) ReLU"


@pytest.mark.parametrize("answer", ["", "  ", "E", "e", "Z", "0", "5", "Swish"])
def test_mcq_no_valid_pick(answer):
    grade = grade_mcq(answer, CHOICES, "ReLU")
    assert not grade.correct
    assert grade.given == ""
    assert grade.expected == "A) ReLU"


def test_mcq_follows_the_shown_order():
    shown = ["GELU", "Sigmoid", "ReLU", "Leaky ReLU (negative_slope=0.01)"]
    for answer in ("C", "c", "3", "relu"):
        grade = grade_mcq(answer, shown, "ReLU")
        assert grade.correct, answer
        assert grade.given == "C) ReLU"
        assert grade.expected == "C) ReLU"
    # 'A' meant ReLU in the file's order, but the user saw GELU there.
    grade = grade_mcq("A", shown, "ReLU")
    assert not grade.correct
    assert grade.given == "A) GELU"


def test_mcq_two_choices_limit_letters():
    grade = grade_mcq("c", ["yes", "no"], "no")
    assert not grade.correct
    assert grade.given == ""
    assert grade_mcq("b", ["yes", "no"], "no").correct


@pytest.mark.parametrize(("given", "expected"), [("0.74", 0.75), ("0.76", 0.75), ("1.1", 1.0)])
def test_an_answer_exactly_at_the_tolerance_edge_is_correct(given, expected):
    tolerance = 0.01 if expected == 0.75 else 0.1
    assert grade_numeric(given, expected, tolerance=tolerance).correct
    assert not grade_numeric(str(expected + 3 * tolerance), expected, tolerance=tolerance).correct


@pytest.mark.parametrize("typed", ["A)", "a)", "a.", "a) relu", "A) ReLU"])
def test_typing_the_label_the_quiz_shows_picks_that_choice(typed):
    assert grade_mcq(typed, ["ReLU", "GELU"], "ReLU").correct


def test_a_choice_that_is_a_number_is_matched_by_its_text_first():
    assert grade_mcq("3", ["1", "3", "2"], "3").correct
    assert grade_mcq("b", ["1", "3", "2"], "3").correct
