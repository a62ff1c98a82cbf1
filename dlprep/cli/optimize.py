"""`dlprep optimize`: personal FSRS parameters from your own review log."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from dlprep import render
from dlprep.cli._app import app, open_store
from dlprep.errors import UsageError


@app.command()
def optimize(
    reset: Annotated[
        bool, typer.Option("--reset", help="Go back to FSRS's default parameters.")
    ] = False,
    max_reviews: Annotated[
        int,
        typer.Option(
            min=1000, help="Fit on a random sample of cards' histories past this many answers."
        ),
    ] = 10_000,
) -> None:
    """Fit the scheduler to how you remember: FSRS's optimizer on your review log. Shows the
    log loss before and after; the new parameters are used from then on if they fit better."""
    with open_store() as store:
        settings = store.settings()
        if reset:
            store.save_settings(replace(settings, fsrs_parameters=None))
            render.line("FSRS parameters reset to the defaults.")
            return
        answers = store.answer_log()
    from dlprep.optimize import MIN_REVIEWS, eligible_reviews, fit, histories

    eligible = eligible_reviews(histories(answers))
    if eligible < MIN_REVIEWS:
        raise UsageError(
            f"not enough reviews yet: {eligible} of your answers came on a later day than the "
            f"card's previous review; the optimizer needs at least {MIN_REVIEWS} "
            f"({MIN_REVIEWS - eligible} more)"
        )
    render.line(f"fitting FSRS to {len(answers)} answers (this can take a minute)...")
    result = fit(answers, settings.fsrs_parameters, max_answers=max_reviews)
    adopted = result.improved
    if adopted:
        with open_store() as store:
            store.save_settings(replace(store.settings(), fsrs_parameters=result.parameters))
    render.optimize_result(result, adopted)
