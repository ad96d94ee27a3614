"""Routing and resilience through the live app: failover, recovery, health, limits, admin state.

With REDIS_URL set (CI's second pass) the live gateway's StateStore is Redis, so every
test here also runs against the shared store.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.core.management import call_command

from accounts.actions import reset_budget_period
from proxy.jobs.health_checks import run_health_checks
from proxy.models import ConfigVersion, Credential, HealthState, HealthStatus, ModelRoute, Provider, UsageRecord
from proxy.serving.routing_state import credential_states
from proxy.serving.spend import seed_spend
from proxy.serving.state import clear_cooldowns
from tests import factories
from tests.fakes import FakeUpstream, Recorded, Stream
from tests.fakes import Reply as FakeReply
from tests.fakes import openai as up

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


class Upstream:
    """Answers per credential (its bearer token) and per path: queued scripts, then defaults."""

    def __init__(self) -> None:
        self.queued: dict[str, list[FakeReply | Stream]] = {}
        self.models: dict[str, int] = {}  # credential -> status of GET /models
        self.seen: list[str] = []

    def __call__(self, rec: Recorded) -> FakeReply | Stream:
        cred = rec.headers.get("authorization", "").removeprefix("Bearer ")
        if rec.path.endswith("/models"):
            status = self.models.get(cred, 200)
            return FakeReply({"object": "list", "data": []}) if status == 200 else up.error(status)
        self.seen.append(cred)
        q = self.queued.get(cred)
        return q.pop(0) if q else up.completion("ok from " + cred)


def setup(live: Any, fake: FakeUpstream, *, creds: int = 2, options: dict[str, Any] | None = None,
          **key_kw: Any) -> tuple[str, Upstream, list[Credential]]:  # fmt: skip
    p = Provider.objects.create(name="up", type="openai-compatible", base_url=fake.url + "/v1", options=options or {})
    rows = [Credential.objects.create(provider=p, name=f"key-{i}", api_key=f"k{i}") for i in range(1, creds + 1)]
    ModelRoute.objects.create(provider=p, name="gpt-test", upstream="gpt-up", input_price=Decimal("3"),
                              output_price=Decimal("15"))  # fmt: skip
    _, raw = factories.api_key(factories.user(), **key_kw)
    script = Upstream()
    fake.default("*", script)
    live.reload()
    return raw, script, rows


def post(live: Any, raw: str, body: dict[str, Any] = BODY) -> httpx.Response:
    return httpx.post(live.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {raw}"})


def wait_for(check: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_it_fails_over_a_rate_limited_credential_and_takes_it_back(live: Any, fake: FakeUpstream) -> None:
    raw, script, _ = setup(live, fake)
    script.queued["k1"] = [up.error(429, "slow down", {"retry-after": "1"})]
    r = post(live, raw)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok from k2"
    assert (r.headers["x-llmproxy-provider"], r.headers["x-llmproxy-attempts"]) == ("up", "2")
    assert post(live, raw).status_code == 200
    assert script.seen == ["k1", "k2", "k2"]  # k1 sits out its Retry-After
    time.sleep(1.1)
    for _ in range(2):
        assert post(live, raw).status_code == 200
    assert "k1" in script.seen[3:]  # back without a restart
    live.flush_usage()
    first = UsageRecord.objects.order_by("created_at").first()
    assert first is not None and (first.credential, first.attempts, first.status_code) == ("key-2", 2, 200)


def test_it_answers_an_exhausted_pool_in_the_clients_dialect(live: Any, fake: FakeUpstream) -> None:
    raw, script, _ = setup(live, fake)
    script.queued["k1"] = [up.error(429, headers={"retry-after": "20"})]
    script.queued["k2"] = [up.error(429, headers={"retry-after": "7"})]
    r = post(live, raw)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["type"] == "rate_limit_error"
    g = httpx.post(live.url + "/v1beta/models/gpt-test:generateContent", headers={"x-goog-api-key": raw},
                   json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})  # fmt: skip
    err = g.json()["error"]
    assert g.status_code == 429 and err["status"] == "RESOURCE_EXHAUSTED" and int(g.headers["retry-after"]) <= 7
    assert err["details"][0]["retryDelay"].endswith("s")
    assert script.seen == ["k1", "k2"]


def test_it_probes_credentials_and_routes_around_unhealthy_ones(live: Any, fake: FakeUpstream) -> None:
    raw, script, (k1, k2) = setup(live, fake)
    script.models["k1"] = 401
    version = ConfigVersion.objects.get(pk=1).version
    summary = run_health_checks()
    assert summary["checked"] == 2 and summary["unhealthy"] == 1 and summary["changed"] == 1
    h1 = HealthStatus.objects.get(credential=k1)
    assert (h1.state, h1.consecutive_failures, h1.error) == (HealthState.UNHEALTHY, 1, "HTTP 401")
    assert HealthStatus.objects.get(credential=k2).state == HealthState.HEALTHY
    assert ConfigVersion.objects.get(pk=1).version > version  # the verdict reaches every process
    live.reload()
    assert all(post(live, raw).status_code == 200 for _ in range(4))
    assert script.seen == ["k2"] * 4
    script.models["k1"] = 200
    assert run_health_checks()["changed"] == 1
    live.reload()
    for _ in range(4):
        post(live, raw)
    assert script.seen[4:].count("k1") == 2


def test_it_shows_and_clears_each_credentials_state(live: Any, fake: FakeUpstream) -> None:
    raw, script, (k1, _) = setup(live, fake)
    script.queued["k1"] = [up.error(500)]
    assert post(live, raw).status_code == 200
    wait_for(lambda: any(s.cooldowns for s in credential_states()))
    states = {s.name: s for s in credential_states()}
    assert states["key-1"].status == "cooling" and states["key-2"].status == "ready"
    [cd] = states["key-1"].cooldowns
    assert (cd.model, cd.reason, cd.failures) == ("gpt-up", "error", 1) and 0 < cd.seconds_left <= 5
    assert clear_cooldowns(k1.pk) == 1
    assert {s.name: s.status for s in credential_states()} == {"key-1": "ready", "key-2": "ready"}
    script.queued["k2"] = [up.error(401)]  # an auth failure cools the whole credential
    for _ in range(3):
        post(live, raw)
    states = {s.name: s for s in credential_states()}
    assert [c.model for c in states["key-2"].cooldowns] == [""]
    call_command("clear_cooldowns")
    assert all(not s.cooldowns for s in credential_states())


def test_it_enforces_key_rate_limits(live: Any, fake: FakeUpstream) -> None:
    raw, _, _ = setup(live, fake, rpm=2)
    assert [post(live, raw).status_code for _ in range(2)] == [200, 200]
    r = post(live, raw)
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_it_enforces_budgets_across_restarts_and_periods(live: Any, fake: FakeUpstream) -> None:
    raw, _, _ = setup(live, fake, budget_usd=Decimal("0.0001"))
    assert post(live, raw).status_code == 200  # 10 + 5 tokens at $3/$15 per M: $0.000105
    wait_for(lambda: post(live, raw).status_code == 429)
    live.flush_usage()
    live.reload()  # forgets the live counter: the settled spend in the usage table still counts
    r = post(live, raw)
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"
    from accounts.models import ApiKey

    key = ApiKey.objects.get()
    reset_budget_period(key.pk)
    live.reload()
    assert post(live, raw).status_code == 200
    assert seed_spend(key.pk, 1.0) == pytest.approx(1.0)
    assert post(live, raw).status_code == 429


def test_it_fails_budgets_closed_and_rate_limits_open_when_the_store_is_down_and_counts_it_in_metrics(
    live: Any, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``limits.on_store_error``'s defaults through the live app: logged, and in /metrics."""
    from tests.django.test_ops import sample
    from tests.unit.test_limits import BrokenStore

    budget_raw, _, _ = setup(live, fake, budget_usd=Decimal("5"))
    _, rpm_raw = factories.api_key(factories.user("rated"), rpm=1)
    live.reload()
    limiter = live.engine.gateway.limiter
    before = httpx.get(live.url + "/metrics").text  # the node's counts: other processes' too
    monkeypatch.setattr(limiter, "store", BrokenStore())
    monkeypatch.setattr(limiter, "_warned_at", 0.0)  # the warning is logged at most every 10 s
    with caplog.at_level("WARNING", logger="llmproxy.limits"):
        r = post(live, budget_raw)
        assert r.status_code == 503 and r.json()["error"]["code"] == "limits_unavailable"
        assert [post(live, rpm_raw).status_code for _ in range(3)] == [200] * 3  # 1 RPM, yet open
    assert any("limits store unavailable" in m for m in caplog.messages)
    text = httpx.get(live.url + "/metrics").text
    for kind, outcome, n in (("budget", "refused", 1), ("rate_limit", "admitted", 3)):
        got = sample(text, "llmproxy_limits_store_errors_total", kind=kind, outcome=outcome)
        try:
            was = sample(before, "llmproxy_limits_store_errors_total", kind=kind, outcome=outcome)
        except AssertionError:
            was = 0  # not counted yet
        assert got == was + n


def test_it_rebuilds_spend_counters_from_the_usage_records_after_a_redis_flush(live: Any, fake: FakeUpstream) -> None:
    """The store loses every counter (a Redis flush); the snapshot's settled spend (the usage
    records) is each counter's floor, taken once: the counters, and the API's ``spend_usd``,
    equal the sum of the records, however often the snapshot is rebuilt."""
    from django.test import Client

    from accounts.models import ApiKey, User
    from proxy.serving.spend import counter_key

    raw, _, _ = setup(live, fake, budget_usd=Decimal("5"), budget_period="monthly")
    key = ApiKey.objects.get()
    User.objects.filter(pk=key.user_id).update(budget_usd=Decimal("5"), budget_period="monthly")
    store = live.engine.gateway.router.store
    staff = Client()
    staff.force_login(factories.user("root", staff=True))

    def check() -> None:
        holders = [ApiKey.objects.get(pk=key.pk), User.objects.get(pk=key.user_id)]
        recorded = sum(r.cost_usd for r in UsageRecord.objects.filter(key_id=key.pk))
        assert recorded > 0
        assert store.spends([counter_key(h) for h in holders]) == [pytest.approx(float(recorded), abs=1e-9)] * 2
        shown = [staff.get(f"/api/v1/keys/{key.pk}").json(), staff.get(f"/api/v1/users/{key.user_id}").json()]
        assert [s["spend_usd"] for s in shown] == [pytest.approx(float(recorded), abs=1e-6)] * 2
        assert all(s["budget_resets_at"] for s in shown)

    live.reload()
    try:
        for _ in range(2):
            for _ in range(3):
                assert post(live, raw).status_code == 200
            live.flush_usage()
            check()
            live.call(live.engine.reload(force=True))  # the snapshot's floors catch up with the records
            store.reset()  # then Redis loses everything
            assert [post(live, raw).status_code for _ in range(2)] == [200, 200]
            live.flush_usage()
            check()
            live.call(live.engine.reload(force=True))  # rebuilt again, counters intact: nothing added twice
            assert post(live, raw).status_code == 200
            live.flush_usage()
            check()
    finally:
        store.reset()  # ids restart with the next test database; these counters would not


def test_it_serves_aliases_and_falls_back_over_upstream_models(live: Any, fake: FakeUpstream) -> None:
    options = {"aliases": {"fast": "gpt-test"}, "upstreams": {"gpt-test": ["gpt-up-2"]}}
    raw, _, _ = setup(live, fake, creds=1, options=options)
    models = httpx.get(live.url + "/v1/models", headers={"authorization": f"Bearer {raw}"}).json()["data"]
    assert {m["id"] for m in models} == {"gpt-test", "fast"}

    def by_model(rec: Recorded) -> FakeReply:
        return up.error(404, "no such model") if rec.body["model"] == "gpt-up" else up.completion("via gpt-up-2")

    fake.default("*", by_model)
    r = post(live, raw, {**BODY, "model": "fast"})
    assert r.status_code == 200 and r.json()["model"] == "fast"
    assert [rq.body["model"] for rq in fake.requests] == ["gpt-up", "gpt-up-2"]
    post(live, raw)
    assert fake.requests[-1].body["model"] == "gpt-up-2"  # the 404 pair sits out a long cooldown


def test_it_weathers_a_storm_with_clean_errors_and_recovers(live: Any, fake: FakeUpstream) -> None:
    raw, script, _ = setup(live, fake, creds=3)
    rng = random.Random(7)
    storm = [up.error(429, headers={"retry-after": "1"}), up.error(500), up.error(503),
             Stream([b"{"], headers={"content-type": "application/json"}, cut_after=0)]  # fmt: skip
    for c in ("k1", "k2", "k3"):
        script.queued[c] = [rng.choice(storm) for _ in range(6)]
    for _ in range(15):
        r = post(live, raw)
        if r.status_code != 200:  # a clean OpenAI error with a time to come back
            assert r.status_code in (429, 503) and int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["type"] in ("rate_limit_error", "server_error")
    script.queued.clear()
    clear_cooldowns()  # the admin's button: no waiting for the transient cooldowns
    assert all(post(live, raw).status_code == 200 for _ in range(6))
    assert set(script.seen[-6:]) == {"k1", "k2", "k3"}
    assert {s.status for s in credential_states()} == {"ready"}


def test_a_staff_reset_of_a_users_budget_lets_its_member_through_again(live: Any, fake: FakeUpstream) -> None:
    """The user's budget (not the key's) blocks; only staff may restart its period, through the API."""
    from django.test import Client
    from django.utils import timezone

    from accounts.models import User
    from accounts.periods import period_resets_at
    from tests.django.helpers import bearer, send

    raw, _, _ = setup(live, fake)
    member = User.objects.get(username="alice")
    member.budget_usd, member.budget_period = Decimal("0.0001"), "monthly"
    member.save()
    live.reload()
    assert post(live, raw).status_code == 200  # $0.000105: the user's budget is spent
    wait_for(lambda: post(live, raw).status_code == 429)
    live.flush_usage()
    live.reload()  # the floor from the usage records alone still blocks
    r = post(live, raw)
    assert r.status_code == 429 and r.json()["error"]["message"] == "user budget of 0.0001 USD per month reached"
    client, now = Client(), timezone.now()
    _, own = factories.api_key(member, admin=True)
    _, other = factories.api_key(factories.user("bob"), admin=True)
    _, root = factories.api_key(factories.user("root", staff=True), admin=True)
    body = {"period_started_at": now.isoformat()}
    assert send(client, "patch", f"/users/{member.pk}", body, headers=bearer(own)).status_code == 403
    assert send(client, "patch", f"/users/{member.pk}", body, headers=bearer(other)).status_code == 404
    live.reload()
    assert post(live, raw).status_code == 429  # neither member moved anything
    r = send(client, "patch", f"/users/{member.pk}", body, headers=bearer(root))
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["spend_usd"] == 0 and out["period_started_at"] is not None
    assert out["budget_resets_at"] == period_resets_at("monthly").isoformat().replace("+00:00", "Z")
    live.reload()
    assert post(live, raw).status_code == 200
    wait_for(lambda: post(live, raw).status_code == 429)  # spent again, counted from the reset
    live.flush_usage()
    spent = send(client, "get", f"/users/{member.pk}", headers=bearer(root)).json()["spend_usd"]
    assert (
        spent == pytest.approx(0.000105) and UsageRecord.objects.filter(user_id=member.pk, status_code=200).count() == 2
    )
