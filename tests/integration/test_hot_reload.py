"""Two real ``serve --no-jobs`` processes on one database: every change reaches both within a second."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from accounts.actions import revoke_api_key
from accounts.models import ApiKey, User
from proxy.models import ModelRoute, Provider, UsageRecord
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

from .conftest import BASE_DIR, Serve, child_env, until

pytestmark = pytest.mark.django_db(transaction=True)

PROPAGATION = 1.0  # seconds: the contract (INTERFACE.md section 1)


@dataclass
class Setup:
    route: ModelRoute
    key: ApiKey
    raw: str
    user: User


def chat(client: httpx.Client, server: Serve, key: str, model: str = "gpt-test") -> httpx.Response:
    return client.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=10)  # fmt: skip


def status(server: Serve, key: str, model: str = "gpt-test") -> int:
    with httpx.Client() as c:
        return chat(c, server, key, model).status_code


def within(seconds: float, check: Any, what: str) -> float:
    took = until(check, seconds, every=0.01, what=what)
    assert took <= seconds, f"{what} took {took:.2f} s"
    return took


@pytest.fixture
def setup(servers: list[Serve], fake: FakeUpstream) -> Setup:
    fake.default("/v1/chat/completions", up.completion("ok"))
    p = factories.provider("up", fake.url + "/v1", models=[{"name": "gpt-test", "upstream": "up-a"}])
    user = factories.user()
    key, raw = factories.api_key(user)
    for s in servers:
        until(lambda s=s: status(s, raw) == 200, 10, what="the servers serve the first config")
    return Setup(route=p.routes.get(), key=key, raw=raw, user=user)


def test_it_accepts_a_key_created_by_the_command_in_every_process_within_a_second(
    servers: list[Serve], setup: Setup
) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "--user", "bob", "--create-user", "--name", "cli"],
        cwd=BASE_DIR, env=child_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    committed = time.monotonic()
    assert done.returncode == 0, done.stderr
    raw = done.stdout.strip().splitlines()[-1]
    assert raw.startswith("sk-llmp-") and ApiKey.objects.filter(user__username="bob").exists()
    for s in servers:
        until(lambda s=s: status(s, raw) == 200, PROPAGATION, every=0.01, what="the new key is accepted")
    assert time.monotonic() - committed <= PROPAGATION


def test_it_serves_a_changed_route_from_every_process_within_a_second(
    servers: list[Serve], setup: Setup, fake: FakeUpstream
) -> None:
    def upstream_model(server: Serve) -> str:
        assert status(server, setup.raw) == 200
        return str(fake.last().body["model"])

    assert [upstream_model(s) for s in servers] == ["up-a", "up-a"]
    setup.route.upstream = "up-b"
    setup.route.save()
    for s in servers:
        within(PROPAGATION, lambda s=s: upstream_model(s) == "up-b", "the new upstream model is used")


def test_it_refuses_a_revoked_key_in_every_process_within_a_second(servers: list[Serve], setup: Setup) -> None:
    revoke_api_key(setup.key)
    committed = time.monotonic()
    for s in servers:
        until(lambda s=s: status(s, setup.raw) == 401, PROPAGATION, every=0.01, what="the revoked key is refused")
    assert time.monotonic() - committed <= PROPAGATION


def test_it_fails_no_request_while_the_config_changes_thirty_times(
    servers: list[Serve], setup: Setup, fake: FakeUpstream
) -> None:
    results: list[tuple[int, int, str, str]] = []
    stop = threading.Event()

    def trickle(i: int, server: Serve) -> None:
        with httpx.Client() as c:
            while not stop.is_set():
                try:
                    r = chat(c, server, setup.raw)
                    results.append((i, r.status_code, r.headers.get("x-request-id", ""), r.text[:300]))
                except httpx.HTTPError as exc:
                    results.append((i, 0, "", repr(exc)))
                stop.wait(0.01)

    threads = [threading.Thread(target=trickle, args=(i, s)) for i, s in enumerate(servers)]
    for t in threads:
        t.start()
    try:
        for n in range(30):
            _change(n, setup, fake)
            time.sleep(0.05)
        time.sleep(PROPAGATION)
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    failed = [r for r in results if r[1] != 200]
    assert failed == []
    assert all(sum(1 for r in results if r[0] == i) >= 20 for i in range(len(servers))), len(results)
    assert {"up-a", "up-b"} <= {r.body["model"] for r in fake.requests if isinstance(r.body, dict)}
    assert Provider.objects.count() > 1


def _change(n: int, setup: Setup, fake: FakeUpstream) -> None:
    """One of several kinds of valid config changes, none of which takes the trickle's model away."""
    kind = n % 4
    if kind == 0:
        setup.route.upstream = "up-b" if setup.route.upstream == "up-a" else "up-a"
        setup.route.input_price = n
        setup.route.save()
    elif kind == 1:
        factories.provider(f"other-{n}", fake.url + "/v1", models=[{"name": f"other-{n}"}, {"name": "gpt-test"}],
                           priority=-1)  # fmt: skip
    elif kind == 2:
        key, _ = factories.api_key(setup.user, name=f"extra-{n}")
        revoke_api_key(key)
    else:
        Provider.objects.filter(name=f"other-{n - 2}").delete()


def test_it_records_every_request_without_celery(servers: list[Serve], setup: Setup) -> None:
    ids: list[str] = []
    with httpx.Client() as c:
        for s in servers:
            for _ in range(3):
                r = chat(c, s, setup.raw)
                assert r.status_code == 200
                ids.append(r.headers["x-request-id"])
        r = chat(c, servers[0], setup.raw, model="no-such-model")
        assert r.status_code == 404
        ids.append(r.headers["x-request-id"])
    until(lambda: UsageRecord.objects.filter(request_id__in=ids).count() == len(ids), 10, what="usage written")
    rows = UsageRecord.objects.filter(request_id__in=ids)
    assert sorted(rows.values_list("status_code", flat=True)) == [200] * 6 + [404]
    assert {r.key_id for r in rows} == {setup.key.pk}
