"""200 concurrent requests at a budget's edge: the spend stays within one request of it.

Two gateways on one in-memory store (the embedded profile's sharing), and - with
REDIS_URL - two gateway processes on one Redis. Each request is estimated before it is
sent (tokenizer + ``max_tokens`` at the route's price), held, and settled to the cost
the upstream reported; the recorded spend (the usage events) never passes the budget by
more than one request's cost, and the live counter equals the sum of the records.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from llmproxy.http import HTTPClient
from llmproxy.limits import Limiter
from llmproxy.state import MemoryStateStore
from llmproxy.stores import create_store
from llmproxy.usage import UsageEvent
from tests.fakes import FakeUpstream
from tests.fakes import openai as up
from tests.unit import budget_edge as edge
from tests.unit.test_state import KINDS

ROOT = Path(__file__).resolve().parents[2]


def _check(statuses: list[int], costs: list[float], counter: float) -> None:
    spent = sum(costs)
    assert statuses.count(200) == len(costs) and set(statuses) == {200, 429}
    assert spent <= edge.BUDGET + edge.COST + 1e-9  # over by at most one request
    assert spent >= edge.BUDGET - 2 * 0.0028  # and the budget was used, not refused early
    assert counter == pytest.approx(spent, abs=1e-9)


@pytest.mark.parametrize("stream", [False, True])
async def test_two_gateways_on_one_store_hold_the_key_budget(fake: FakeUpstream, stream: bool) -> None:
    fake.default("*", up.stream(["o", "k"], prompt=10, completion_tokens=5) if stream else up.completion("ok"))
    store, events = MemoryStateStore(), list[UsageEvent]()
    http = HTTPClient()
    rt = edge.runtime(f"{fake.url}/v1")
    try:
        statuses = await edge.fire([edge.gateway(store, rt, events, http) for _ in range(2)], 200, stream=stream)
    finally:
        await http.close()
    costs = [e.cost_usd for e in events if e.cost_usd]
    counter = store.spends([Limiter(store).spend_key("k:900", "monthly")])[0]
    _check(statuses, costs, counter)
    refused = [e for e in events if e.status_code == 429]
    assert refused and all(e.error_type == "budget_exceeded" for e in refused)


async def test_two_gateways_on_one_store_hold_the_user_budget(fake: FakeUpstream) -> None:
    fake.default("*", up.completion("ok"))
    store, events = MemoryStateStore(), list[UsageEvent]()
    http = HTTPClient()
    rt = edge.runtime(f"{fake.url}/v1", user_budget=edge.BUDGET)
    try:
        statuses = await edge.fire([edge.gateway(store, rt, events, http) for _ in range(2)], 200)
    finally:
        await http.close()
    counter = store.spends([Limiter(store).spend_key("u:901", "monthly")])[0]
    _check(statuses, [e.cost_usd for e in events if e.cost_usd], counter)


@pytest.mark.parametrize("kind", KINDS)
async def test_two_processes_hold_the_key_budget(fake: FakeUpstream, kind: str) -> None:
    """Redis: two gateway processes. Memory: the embedded profile serves from one process
    (``serve --workers N`` needs Redis), so two gateways on its one store stand in."""
    fake.default("*", up.completion("ok"))
    if kind == "memory":
        await test_two_gateways_on_one_store_hold_the_key_budget(fake, False)
        return
    url, prefix = os.environ["REDIS_URL"], f"test:{uuid.uuid4().hex}:"
    cmd = [sys.executable, "-m", "tests.unit.budget_edge", f"{fake.url}/v1", url, prefix, "100"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [await asyncio.create_subprocess_exec(*cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE) for _ in range(2)]
    outs = [json.loads((await p.communicate())[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    store = create_store(url, prefix=prefix)
    try:
        counter = store.spends([Limiter(store).spend_key("k:900", "monthly")])[0]
        _check(outs[0]["statuses"] + outs[1]["statuses"], outs[0]["costs"] + outs[1]["costs"], counter)
        assert all(200 in o["statuses"] for o in outs)  # both processes served some
    finally:
        store.reset()


async def test_a_failed_request_gives_its_hold_back(fake: FakeUpstream) -> None:
    fake.default("*", up.error(400, "bad request"))
    store, events = MemoryStateStore(), list[UsageEvent]()
    http = HTTPClient()
    try:
        gw = edge.gateway(store, edge.runtime(f"{fake.url}/v1"), events, http)
        statuses = [s for _ in range(20) for s in await edge.fire([gw], 1)]  # more than 3 holds would refuse
        fake.default("*", up.completion("ok"))
        assert set(statuses) == {400} and set(await edge.fire([gw], 3)) == {200}  # no hold was left behind
    finally:
        await http.close()
    assert store.spends([Limiter(store).spend_key("k:900", "monthly")]) == [pytest.approx(3 * edge.COST)]
