"""The router on its own: tiers, weights, strategies, affinity, exclusions, cooldowns, limits."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from llmproxy.errors import NoRouteAvailable, ProviderConnectionError, ProviderHTTPError, ProviderTimeout
from llmproxy.outcome import Outcome, classify, reset_after
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.routing import Candidate, Router
from llmproxy.runtime import Route, RoutingSettings
from llmproxy.state import StateStore
from tests.unit.stores import Clock

S = RoutingSettings()
RATE_LIMITED = Outcome("rate_limited", "pair", True, base=60, fixed=None, cap=900)
ERROR = Outcome("error", "pair", True, base=5, cap=900)


def provider(name: str, *, priority: int = 0, weight: int = 1, **kw: Any) -> ProviderConfig:
    return ProviderConfig(name=name, type="openai-compatible", priority=priority, weight=weight, **kw)


def creds(p: ProviderConfig, *weights: int, extra: dict[str, Any] | None = None) -> tuple[Credential, ...]:
    return tuple(Credential(f"k{i + 1}", p.name, api_key="x", weight=w, extra=extra or {}, id=hash((p.name, i)) % 10**6)
                 for i, w in enumerate(weights))  # fmt: skip


def route(p: ProviderConfig, *weights: int, model: str = "m", upstream: str = "up", **kw: Any) -> Route:
    return Route(model, upstream, p, creds(p, *weights, **kw))


@pytest.fixture
def router(store: StateStore, clock: Clock) -> Router:
    return Router(store, clock=clock)


def names(cands: Sequence[Candidate]) -> list[str]:
    return [f"{c.route.provider.name}/{c.credential.name}" for c in cands]


async def first(router: Router, routes: Sequence[Route], settings: RoutingSettings = S, **kw: Any) -> str:
    plan = await router.plan(routes, settings, **kw)
    return names(plan.candidates)[0]


async def test_router_weights_hold_over_a_thousand_requests(router: Router) -> None:
    routes = [route(provider("a"), 5, 3, 2)]
    counts = Counter([await first(router, routes) for _ in range(1000)])
    for name, share in (("a/k1", 0.5), ("a/k2", 0.3), ("a/k3", 0.2)):
        assert abs(counts[name] / 1000 - share) <= 0.02


async def test_router_multiplies_provider_and_credential_weights(router: Router) -> None:
    routes = [route(provider("a", weight=3), 1), route(provider("b"), 1, 2)]
    counts = Counter([await first(router, routes) for _ in range(1000)])
    assert abs(counts["a/k1"] / 1000 - 0.5) <= 0.02
    assert abs(counts["b/k1"] / 1000 - 1 / 6) <= 0.02 and abs(counts["b/k2"] / 1000 - 2 / 6) <= 0.02


async def test_router_tries_tiers_highest_first(router: Router) -> None:
    routes = [route(provider("cheap"), 1, 1), route(provider("main", priority=10), 1, 1)]
    plan = await router.plan(routes, S)
    assert [c.route.provider.name for c in plan.candidates] == ["main", "main", "cheap", "cheap"]


async def test_router_fill_first_keeps_to_the_first_until_it_is_cooled(router: Router) -> None:
    routes = [route(provider("a"), 1, 5, 1)]
    ff = RoutingSettings(strategy="fill-first")
    assert {await first(router, routes, ff) for _ in range(20)} == {"a/k1"}
    plan = await router.plan(routes, ff)
    await router.fail(plan, plan.candidates[0], RATE_LIMITED)
    assert names((await router.plan(routes, ff)).candidates) == ["a/k2", "a/k3"]


async def test_router_session_affinity_sticks_to_the_last_credential(router: Router) -> None:
    routes = [route(provider("a"), 1, 1, 1)]
    sticky = RoutingSettings(session_affinity_ttl=60)
    plan = await router.plan(routes, sticky, session="conv-1")
    chosen = plan.candidates[1]
    await router.succeed(plan, chosen)
    picks = {names((await router.plan(routes, sticky, session="conv-1")).candidates)[0] for _ in range(10)}
    assert picks == {names([chosen])[0]}
    others = {await first(router, routes, sticky, session="conv-2") for _ in range(6)}
    assert len(others) == 3  # another conversation still rotates


async def test_router_affinity_is_on_by_default_where_the_provider_type_caches_prompts(router: Router) -> None:
    cached = [route(ProviderConfig(name="a", type="claude"), 1, 1)]
    plan = await router.plan(cached, S, session="conv")
    await router.succeed(plan, plan.candidates[1])
    assert {names((await router.plan(cached, S, session="conv")).candidates)[0] for _ in range(4)} == {"a/k2"}
    uncached = [route(provider("b"), 1, 1)]  # openai-compatible: a self-hosted server's cache is shared
    plan = await router.plan(uncached, S, session="conv")
    await router.succeed(plan, plan.candidates[1])
    assert len({await first(router, uncached, S, session="conv") for _ in range(4)}) == 2
    off = RoutingSettings(session_affinity_ttl=0)
    assert len({await first(router, cached, off, session="conv") for _ in range(4)}) == 2


async def test_router_remembers_but_does_not_follow_a_first_turn(router: Router) -> None:
    routes = [route(ProviderConfig(name="a", type="gemini"), 1, 1)]
    plan = await router.plan(routes, S, session="fp", follow=False)
    await router.succeed(plan, plan.candidates[1])
    assert len({await first(router, routes, S, session="fp", follow=False) for _ in range(4)}) == 2
    assert names((await router.plan(routes, S, session="fp")).candidates)[0] == names([plan.candidates[1]])[0]


async def test_router_affinity_yields_to_a_cooled_credential(router: Router) -> None:
    routes = [route(provider("a"), 1, 1)]
    sticky = RoutingSettings(session_affinity_ttl=60)
    plan = await router.plan(routes, sticky, session="c")
    await router.succeed(plan, plan.candidates[0])
    await router.fail(plan, plan.candidates[0], ERROR)
    nxt = await router.plan(routes, sticky, session="c")
    assert names(nxt.candidates) == names(plan.candidates[1:])


async def test_router_skips_excluded_models_per_credential(router: Router) -> None:
    p = provider("a")
    keep = Credential("keep", "a", api_key="x")
    picky = Credential("picky", "a", api_key="x", extra={"exclude_models": ["gpt-4*", "*-preview"]})
    routes = [Route("gpt-4o", "gpt-4o", p, (keep, picky))]
    assert names((await router.plan(routes, S)).candidates) == ["a/keep"]
    other = [Route("mini", "mini", p, (keep, picky))]
    assert sorted(names((await router.plan(other, S)).candidates)) == ["a/keep", "a/picky"]
    preview = [Route("alias", "o3-preview", p, (keep, picky))]  # the upstream name counts too
    assert names((await router.plan(preview, S)).candidates) == ["a/keep"]


async def test_router_sends_traffic_around_a_rate_limited_credential_and_back(router: Router, clock: Clock) -> None:
    routes = [route(provider("a"), 1, 1)]
    plan = await router.plan(routes, S)
    a = plan.candidates[0]
    await router.fail(plan, a, Outcome("rate_limited", "pair", True, base=60, fixed=7, cap=900))
    for _ in range(5):
        assert names((await router.plan(routes, S)).candidates) == names([c for c in plan.candidates if c != a])
    clock.advance(7.5)
    back = await router.plan(routes, S)
    assert names([a])[0] in names(back.candidates)
    assert await router.acquire(back, a) == 0  # the half-open trial
    assert names([a])[0] not in names((await router.plan(routes, S)).candidates)  # one trial at a time
    await router.succeed(back, a)
    counts = Counter([await first(router, routes) for _ in range(10)])
    assert counts[names([a])[0]] == 5  # fully back in rotation


async def test_router_a_failed_trial_doubles_the_cooldown(router: Router, clock: Clock) -> None:
    routes = [route(provider("a"), 1)]
    plan = await router.plan(routes, S)
    rec = await router.fail(plan, plan.candidates[0], ERROR)
    assert rec is not None and rec.until - clock() == pytest.approx(5)
    clock.advance(5.5)
    trial = await router.plan(routes, S)
    assert await router.acquire(trial, trial.candidates[0]) == 0
    rec = await router.fail(trial, trial.candidates[0], ERROR)
    assert rec is not None and rec.until - clock() == pytest.approx(10) and rec.failures == 2


async def test_router_auth_failure_cools_the_credential_for_every_model(router: Router) -> None:
    p = provider("a")
    cred = creds(p, 1, 1)
    r1, r2 = Route("m1", "u1", p, cred), Route("m2", "u2", p, cred)
    plan = await router.plan([r1], S)
    bad = plan.candidates[0]
    await router.fail(plan, bad, classify(ProviderHTTPError("no", upstream_status=401), p, S))
    assert bad.credential.name not in [c.credential.name for c in (await router.plan([r2], S)).candidates]


async def test_router_not_found_cools_only_that_model(router: Router, clock: Clock) -> None:
    p = provider("a")
    cred = creds(p, 1)
    r1, r2 = Route("m1", "u1", p, cred), Route("m2", "u2", p, cred)
    plan = await router.plan([r1], S)
    rec = await router.fail(plan, plan.candidates[0], classify(ProviderHTTPError("x", upstream_status=404), p, S))
    assert rec is not None and rec.until - clock() == pytest.approx(S.not_found_cooldown)
    assert len((await router.plan([r2], S)).candidates) == 1
    with pytest.raises(NoRouteAvailable):
        await router.plan([r1], S)


async def test_router_exhausted_pool_answers_429_with_the_soonest_recovery(router: Router) -> None:
    routes = [route(provider("a"), 1, 1, 1)]
    plan = await router.plan(routes, S)
    for cand, wait in zip(plan.candidates, (30, 7, 12), strict=True):
        await router.fail(plan, cand, Outcome("rate_limited", "pair", True, base=60, fixed=wait, cap=900))
    with pytest.raises(NoRouteAvailable) as info:
        await router.plan(routes, S)
    assert info.value.status == 429 and info.value.code == "rate_limit_exceeded"
    assert info.value.retry_after == pytest.approx(7, abs=0.01)


async def test_router_failing_pool_answers_503(router: Router) -> None:
    routes = [route(provider("a"), 1, 1)]
    plan = await router.plan(routes, S)
    await router.fail(plan, plan.candidates[0], RATE_LIMITED)
    await router.fail(plan, plan.candidates[1], ERROR)
    with pytest.raises(NoRouteAvailable) as info:
        await router.plan(routes, S)
    assert info.value.status == 503 and info.value.retry_after == pytest.approx(5, abs=0.01)


async def test_router_without_credentials_answers_503() -> None:
    with pytest.raises(NoRouteAvailable) as info:
        await Router().plan([Route("m", "m", provider("a"), ())], S)
    assert info.value.status == 503 and info.value.retry_after is None


async def test_router_skips_a_credential_over_its_rpm(router: Router, clock: Clock) -> None:
    p = provider("a", options={"credential_rpm": 2})
    routes = [Route("m", "up", p, creds(p, 1))]
    for _ in range(2):
        plan = await router.plan(routes, S)
        assert await router.acquire(plan, plan.candidates[0]) == 0
    plan = await router.plan(routes, S)
    wait = await router.acquire(plan, plan.candidates[0])
    assert wait == pytest.approx(30, abs=0.1)
    err = plan.unavailable(clock())
    assert err.status == 429 and err.retry_after == pytest.approx(30, abs=0.1)
    clock.advance(31)
    assert await router.acquire(await router.plan(routes, S), plan.candidates[0]) == 0


async def test_router_limits_the_provider_as_a_whole(router: Router) -> None:
    p = provider("a", rpm=3)
    routes = [Route("m", "up", p, creds(p, 1, 1))]
    granted = 0
    for _ in range(5):
        plan = await router.plan(routes, S)
        granted += sum([await router.acquire(plan, c) == 0 for c in plan.candidates[:1]])
    assert granted == 3


async def test_router_settles_tpm_with_the_real_count(router: Router) -> None:
    p = provider("a")
    routes = [Route("m", "up", p, creds(p, 1, extra={"tpm": 1000}))]
    plan = await router.plan(routes, S, tokens=100)
    assert await router.acquire(plan, plan.candidates[0]) == 0
    await router.settle(plan, plan.candidates[0], 1100)  # 1000 more than estimated: the minute is spent
    nxt = await router.plan(routes, S, tokens=100)
    assert await router.acquire(nxt, nxt.candidates[0]) > 0


async def test_router_tries_unhealthy_credentials_last(router: Router) -> None:
    routes = [route(provider("a"), 1, 1, 1)]
    sick = routes[0].credentials[0].id
    assert sick is not None
    for _ in range(5):
        plan = await router.plan(routes, S, unhealthy=frozenset({sick}))
        assert plan.candidates[-1].credential.id == sick


async def test_two_routers_on_one_store_agree(store: StateStore, clock: Clock) -> None:
    """Two gateway processes: one's cooldowns and round-robin position are the other's."""
    one, two = Router(store, clock=clock), Router(store, clock=clock)
    routes = [route(provider("a"), 3, 1)]
    counts = Counter([await first(one if i % 2 else two, routes) for i in range(400)])
    assert (counts["a/k1"], counts["a/k2"]) == (300, 100)
    plan = await one.plan(routes, S)
    await one.fail(plan, plan.candidates[0], Outcome("rate_limited", "pair", True, base=60, fixed=2, cap=900))
    assert names((await two.plan(routes, S)).candidates) == names(plan.candidates[1:])
    clock.advance(2.5)
    back = await two.plan(routes, S)
    assert await two.acquire(back, plan.candidates[0]) == 0
    with pytest.raises(NoRouteAvailable):  # the trial taken by two blocks one
        await one.plan([Route("m", "up", routes[0].provider, (plan.candidates[0].credential,))], S)


@pytest.mark.parametrize(
    ("err", "reason", "scope", "retry"),
    [
        (ProviderHTTPError("x", upstream_status=429, retry_after=3), "rate_limited", "pair", True),
        (ProviderHTTPError("x", upstream_status=401), "auth", "credential", True),
        (ProviderHTTPError("x", upstream_status=403), "auth", "credential", True),
        (ProviderHTTPError("x", upstream_status=404), "not_found", "pair", True),
        (ProviderHTTPError("x", upstream_status=408), "error", "pair", True),
        (ProviderHTTPError("x", upstream_status=500), "error", "pair", True),
        (ProviderHTTPError("x", upstream_status=529), "error", "pair", True),
        (ProviderTimeout("x"), "error", "pair", True),
        (ProviderConnectionError("x"), "error", "pair", True),
        (ProviderHTTPError("x", upstream_status=400), "client", None, False),
        (ProviderHTTPError("x", upstream_status=413), "client", None, False),
    ],
)
def test_classify_maps_each_failure(err: Any, reason: str, scope: str | None, retry: bool) -> None:
    out = classify(err, provider("a", cooldown=60), S)
    assert (out.reason, out.scope, out.retry) == (reason, scope, retry)
    if reason == "rate_limited":
        assert (out.fixed, out.base) == (3, 60)


def test_reset_after_reads_every_provider_dialect() -> None:
    now = 1_700_000_000.0
    assert reset_after({"x-ratelimit-reset-requests": "1m30s", "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-tokens": "250ms"}, b"", now) == pytest.approx(90)  # fmt: skip
    assert reset_after({"x-ratelimit-reset-tokens": "6m0s", "x-ratelimit-reset-requests": "2s"}, b"", now) == 2
    anth = {"anthropic-ratelimit-tokens-reset": "2023-11-14T22:14:00Z", "anthropic-ratelimit-tokens-remaining": "0"}
    assert reset_after(anth, b"", now) == pytest.approx(40)  # now is 22:13:20Z
    assert reset_after({"x-ratelimit-reset": str(int((now + 12) * 1000))}, b"", now) == pytest.approx(12)
    gemini = (b'{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":'
              b'"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}')  # fmt: skip
    assert reset_after({}, gemini, now) == 37
    assert reset_after({}, b"{}", now) is None
    assert math.isclose(reset_after({"x-ratelimit-reset-requests": "garbage"}, b"", now) or -1, -1)


async def test_router_a_client_error_passes_a_trial(router: Router, clock: Clock) -> None:
    routes = [route(provider("a"), 1)]
    plan = await router.plan(routes, S)
    await router.fail(plan, plan.candidates[0], ERROR)
    clock.advance(6)
    trial = await router.plan(routes, S)
    assert await router.acquire(trial, trial.candidates[0]) == 0
    assert await router.fail(trial, trial.candidates[0], Outcome("client", None, False)) is None
    assert router.store.list_cooldowns() == {}
