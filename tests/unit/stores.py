"""The state stores the engine tests run on: in memory always, and Redis when REDIS_URL is set.

Tests that take the ``store`` fixture (``tests/unit/conftest.py``) run once per kind, so
the Lua scripts and the in-memory implementation are held to the same behaviour.
"""

from __future__ import annotations

import os
import time

from llmproxy.state import MemoryStateStore, StateStore
from llmproxy.stores import create_store


class Clock:
    """Wall-clock seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


KINDS = ["memory"] + (["redis"] if os.environ.get("REDIS_URL") else [])


def make_store(kind: str, clock: Clock, prefix: str) -> StateStore:
    if kind == "memory":
        return MemoryStateStore(clock)
    return create_store(os.environ["REDIS_URL"], prefix=prefix)
