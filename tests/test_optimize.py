"""`dlprep optimize`: personal FSRS parameters from a (simulated) learner's review log."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from dlprep import paths
from dlprep.cli import app
from dlprep.optimize import MIN_REVIEWS, eligible_reviews, histories, log_loss
from dlprep.simulate import forgetful_parameters, simulate
from dlprep.store import Store

runner = CliRunner()
START = datetime(2025, 1, 5, 8, tzinfo=timezone.utc)


def study(days: int, cards: int = 300, seed: int = 3) -> int:
    """A forgetful learner's history, written to the home's progress database."""
    reviews = simulate([f"q{i}" for i in range(cards)], days, START, seed=seed)
    with Store(paths.database_path()) as store:
        return store.append_history(
            (r.question_id, r.result, r.reviewed_at, r.duration_ms) for r in reviews
        )


def test_too_few_reviews_says_how_many_more_are_needed():
    study(days=6)
    result = runner.invoke(app, ["optimize"])
    assert result.exit_code == 1
    assert "not enough reviews yet" in result.output
    assert f"needs at least {MIN_REVIEWS}" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_our_log_loss_is_the_fsrs_optimizers_own():
    fsrs_optimizer = pytest.importorskip("fsrs.optimizer")
    from fsrs import Rating, ReviewLog
    from fsrs.scheduler import DEFAULT_PARAMETERS

    from dlprep.scheduler import card_number

    answers = [
        (r.question_id, int(r.result.rating), r.reviewed_at, r.duration_ms)
        for r in simulate([f"q{i}" for i in range(60)], 120, START, seed=1)
    ]
    logs = [ReviewLog(card_number(q), Rating(g), at, ms) for q, g, at, ms in answers]
    theirs = fsrs_optimizer.Optimizer(logs)._compute_batch_loss(parameters=DEFAULT_PARAMETERS)
    assert log_loss(histories(answers), DEFAULT_PARAMETERS) == pytest.approx(theirs, rel=1e-9)


def test_optimize_fits_a_forgetful_learner_better_and_reset_goes_back():
    written = study(days=200, cards=250)
    with Store(paths.database_path()) as store:
        by_card = histories(store.answer_log())
    assert eligible_reviews(by_card) >= MIN_REVIEWS, written

    result = runner.invoke(app, ["optimize", "--max-reviews", "3000"])
    assert result.exit_code == 0, result.output
    assert "the new parameters are used from now on" in result.output
    with Store(paths.database_path()) as store:
        fitted = store.settings().fsrs_parameters
    assert fitted is not None and len(fitted) == 21
    # The fit moves towards the learner's true memory: it predicts their reviews better
    # than the defaults, and the true parameters predict them better still or about as well.
    default_loss = log_loss(by_card, __import__("fsrs").scheduler.DEFAULT_PARAMETERS)
    assert log_loss(by_card, fitted) < default_loss
    assert log_loss(by_card, forgetful_parameters()) < default_loss

    result = runner.invoke(app, ["optimize", "--reset"])
    assert result.exit_code == 0
    with Store(paths.database_path()) as store:
        assert store.settings().fsrs_parameters is None
