"""An admin gives a member $5 a month and 60 RPM; the member's keys stop with a clear 429.

Two real ``serve --no-jobs`` processes on Redis (one on the embedded profile, which
serves from one process: ``--workers N`` needs Redis), requests alternating between them.
The calendar reset itself is checked with a frozen clock in tests/unit/test_limits.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from accounts.models import User
from llmproxy.stores import create_store
from proxy.models import UsageRecord
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

from .conftest import Serve, serving, until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def gateways(django_db_setup: Any) -> Iterator[list[Serve]]:
    with serving(2 if os.environ.get("REDIS_URL") else 1) as procs:
        yield procs


def _member(fake: FakeUpstream, gateways: list[Serve], **limits: Any) -> list[str]:
    if os.environ.get("REDIS_URL"):  # ids restart with each test database; counters would not
        create_store(os.environ["REDIS_URL"]).reset()
    fake.default("/v1/chat/completions", up.completion("ok"))  # 10 + 5 tokens
    factories.provider("up", fake.url + "/v1", models=[
        {"name": "gpt-test", "upstream": "up-a", "input_price": "100000", "output_price": "100000"}])  # fmt: skip
    member = factories.user("member")
    User.objects.filter(pk=member.pk).update(**limits)  # what the admin sets
    raws = [factories.api_key(member, name=f"k{i}")[1] for i in range(2)]
    probe = factories.api_key(factories.user("probe"))[1]  # created last: when it works, so do the member's
    for s in gateways:
        until(lambda s=s: _chat(s, probe, max_tokens=1).status_code == 200, 10, what="the servers see the keys")
    return raws


def _chat(server: Serve, raw: str, max_tokens: int = 20) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"}, timeout=10,
                      json={"model": "gpt-test", "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip


def test_it_stops_a_member_at_the_user_budget_across_keys_and_processes(
    gateways: list[Serve], fake: FakeUpstream
) -> None:
    raws = _member(fake, gateways, budget_usd=Decimal("5"), budget_period="monthly")  # $1.50 a request
    statuses = []
    for i in range(8):
        r = _chat(gateways[i % len(gateways)], raws[i % 2])
        statuses.append(r.status_code)
        if r.status_code == 429:
            body = r.json()["error"]
            assert body["code"] == "budget_exceeded" and body["message"] == "user budget of 5.00 USD per month reached"
            assert 0 < int(r.headers["retry-after"]) <= 31 * 86400
    assert statuses.count(200) == 4 and statuses[4:] == [429] * 4
    served = UsageRecord.objects.filter(user__username="member", status_code=200)
    until(lambda: served.count() == 4, 15, what="the records are written")
    spent = sum(r.cost_usd or 0 for r in served)
    assert spent <= Decimal("5") + Decimal("1.5")  # over by at most one request


def test_it_stops_a_member_at_60_rpm_and_lets_it_in_again(gateways: list[Serve], fake: FakeUpstream) -> None:
    raws = _member(fake, gateways, rpm=60)
    with httpx.Client() as client:
        statuses = [client.post(gateways[i % len(gateways)].url + "/v1/chat/completions", timeout=10,
                                headers={"Authorization": f"Bearer {raws[i % 2]}"},
                                json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}).status_code
                    for i in range(70)]  # fmt: skip
    assert 60 <= statuses.count(200) <= 62 and 429 in statuses  # a token or two may refill meanwhile
    r = _chat(gateways[0], raws[0])
    if r.status_code == 429:
        assert r.json()["error"]["message"] == "user rate limit of 60 requests per minute reached"
    time.sleep(float(r.headers.get("retry-after", "1")) + 0.1)
    assert _chat(gateways[-1], raws[1]).status_code == 200  # the bucket refilled
