"""The agent CLIs must be installed (``bash tests/agents/install.sh``; CI does it).

Outside CI a missing install skips these tests with the command that installs them; under
CI (``CI=true``) it fails them, so a CI run can never pass without the CLIs having run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from accounts.actions import create_api_key
from accounts.models import User
from tests.agents.clis import CLIS, bin_dir


@pytest.fixture(scope="session")
def agent_clis() -> None:
    missing = [c.executable for c in CLIS.values() if not (bin_dir() / c.executable).exists()]
    if not missing:
        return
    message = f"agent CLIs not installed in {bin_dir()} ({', '.join(missing)}): run `bash tests/agents/install.sh`"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def key(live: Any) -> Iterator[str]:
    """A client API key for the CLI under test (its user exists only in this test's database)."""
    user = User.objects.create(username="agent")
    _, secret = create_api_key(user)
    yield secret
