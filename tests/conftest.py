"""Every test gets its own DLPREP_HOME (a fresh progress database and bank cache)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def dlprep_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("DLPREP_HOME", str(home))
    monkeypatch.delenv("DLPREP_BANK", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    return home
