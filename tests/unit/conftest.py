"""Fixtures the engine tests share: a test-driven clock and a state store of each kind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from llmproxy.state import StateStore
from tests.unit.stores import KINDS, Clock, make_store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[StateStore]:
    s = make_store(request.param, clock, f"test:{uuid.uuid4().hex}:")
    yield s
    s.reset()
