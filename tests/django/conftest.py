"""Fixtures several of the shell's test modules share: an auth dir, a site config file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings


@pytest.fixture
def auth_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty auth dir (``LLMPROXY["AUTH_DIR"]``) and var dir for one test's token files."""
    d = tmp_path / "auths"
    d.mkdir()
    monkeypatch.setitem(settings.LLMPROXY, "AUTH_DIR", str(d))
    monkeypatch.setattr(settings, "VAR_DIR", tmp_path / "var")
    return d


@pytest.fixture
def site_config_file(tmp_path: Path) -> Iterator[Path]:
    """A config file (still to be written) that ``LLMPROXY["CONFIG"]`` names; restored after."""
    path = tmp_path / "config.yaml"
    before = settings.LLMPROXY.get("CONFIG")
    settings.LLMPROXY["CONFIG"] = str(path)
    yield path
    settings.LLMPROXY["CONFIG"] = before
