"""The public surface stays put: a change fails here until it is made on purpose.

``public_api.txt`` is the rendering of every ``__all__`` name with its signature. When a
change to it is intended, rewrite it (``python -m tests.packaging.api_snapshot --write``)
and say what changed in CHANGELOG.md, under the version that ships it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path

from .api_snapshot import SNAPSHOT, public_modules, render

ROOT = Path(__file__).resolve().parents[2]


def test_public_api_matches_the_snapshot() -> None:
    current = render()
    recorded = SNAPSHOT.read_text()
    diff = "\n".join(
        difflib.unified_diff(recorded.splitlines(), current.splitlines(), "recorded", "current", lineterm="")
    )
    assert current == recorded, (
        "llmproxy's public API changed. If that is intended, run "
        "`python -m tests.packaging.api_snapshot --write` and add the change to CHANGELOG.md.\n" + diff
    )


def test_every_public_module_exports_sorted_existing_names() -> None:
    for module in public_modules():
        names = list(module.__all__)
        assert len(names) == len(set(names)), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_changelog_has_an_entry_for_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(rf"^## {re.escape(version)}\b", changelog, re.M), f"CHANGELOG.md has no '## {version}' section"
