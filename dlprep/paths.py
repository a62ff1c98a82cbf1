"""Where dlprep keeps things: the progress database, the bank cache and the built-in bank."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "DLPREP_HOME"
BANK_ENV = "DLPREP_BANK"


def home() -> Path:
    """The data directory: $DLPREP_HOME, else the platform's user data dir."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_path

    return user_data_path("dlprep", appauthor=False)


def database_path() -> Path:
    return home() / "progress.db"


def cache_dir() -> Path:
    return home() / "cache"


def builtin_content_dir() -> Path:
    """The bank shipped with dlprep: inside the wheel, or content/ beside dlprep/ in a checkout."""
    package_dir = Path(__file__).resolve().parent
    installed = package_dir / "content"
    if installed.is_dir():
        return installed
    return package_dir.parent / "content"


def user_bank_paths() -> list[Path]:
    """Extra banks named by $DLPREP_BANK (several separated by the OS path separator)."""
    raw = os.environ.get(BANK_ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
