"""`dlprep config`: show and change settings (daily limits, retention, day start, ...)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from dlprep import render
from dlprep.cli._app import Json, app, open_store
from dlprep.config import Settings, descriptions, parse_setting, settable_keys


@app.command()
def config(
    key: Annotated[str | None, typer.Argument(help="A setting to show or change.")] = None,
    value: Annotated[str | None, typer.Argument(help="Its new value.")] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Return KEY (or all) to the default.")
    ] = False,
    json: Json = False,
) -> None:
    """Show settings, or set one: `dlprep config new_per_day 30`."""
    with open_store() as store:
        settings = store.settings()
        if key is not None and key not in settable_keys():
            settings = parse_setting(settings, key, "")  # raises the one-line unknown-setting error
        if reset:
            defaults = Settings()
            settings = (
                defaults if key is None else replace(settings, **{key: getattr(defaults, key)})
            )
            store.save_settings(settings)
        elif value is not None:
            settings = parse_setting(settings, key, value)
            store.save_settings(settings)
    values = {k: getattr(settings, k) for k in settable_keys() if key is None or k == key}
    if json:
        render.print_json(values)
    else:
        render.settings_table(values, descriptions())
