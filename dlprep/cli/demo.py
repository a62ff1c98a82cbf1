"""`dlprep demo`: run a PyTorch demo that measures what an answer claims, or list them."""

from __future__ import annotations

from typing import Annotated

import typer

from dlprep import render
from dlprep.cli._app import EXIT_ERROR, BankPaths, Json, app, open_bank


def _linked_questions(bank: BankPaths) -> dict[str, list[str]]:
    linked: dict[str, list[str]] = {}
    for question in open_bank(bank).questions:
        if question.demo:
            linked.setdefault(question.demo, []).append(question.id)
    return linked


@app.command()
def demo(
    name: Annotated[str | None, typer.Argument(help="The demo to run (see --list).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the demos.")] = False,
    device: Annotated[
        str, typer.Option(help="auto (CUDA when present, else CPU), cpu or cuda.")
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same run.")] = 0,
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes and few steps (seconds on a laptop CPU).")
    ] = False,
    nproc: Annotated[
        int | None,
        typer.Option(help="Processes for a distributed demo (default 2); see also torchrun."),
    ] = None,
    json: Json = False,
    bank: BankPaths = None,
) -> None:
    """Run a demo: it trains or computes on data it makes, and checks each claim it prints.

    Exit code 0 when every claim holds, 1 otherwise.
    """
    from dlprep import demos  # not at the top: `dlprep quiz` loads this module too

    if list_ or name is None:
        infos = demos.available()
        linked = _linked_questions(bank)
        rows = [
            {"id": i.id, "summary": i.summary, "questions": linked.get(i.id, [])}
            for i in infos.values()
        ]
        if json:
            render.print_json(rows)
        else:
            render.demo_list(rows)
        return
    report = demos.run(name, device=device, seed=seed, quick=quick, nproc=nproc)
    if json:
        render.print_json(report.to_json())
    else:
        render.demo_report(report)
    if not report.result.all_hold:
        raise typer.Exit(EXIT_ERROR)
