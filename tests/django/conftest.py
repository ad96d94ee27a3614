"""Fixtures several of the shell's test modules share: an auth dir, a site config file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

# What only a shared Redis can show (counts across processes) is not collected without one
# rather than skipped, so the embedded profile's green run hides no skipped test.
collect_ignore = [] if os.environ.get("REDIS_URL") else ["test_key_throttle_shared.py"]


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
