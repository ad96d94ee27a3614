"""Key limits and budgets, and the upstream buckets of a candidate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest

from llmproxy.errors import LimitExceeded
from llmproxy.limits import Limiter, candidate_costs, estimate_tokens, period_end, spend_key
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import ApiKeyInfo
from llmproxy.state import Bucket, Cooldown, StateStore, StoreError
from tests.unit.test_state import KINDS, Clock, make_store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[StateStore]:
    s = make_store(request.param, clock, f"test:{uuid.uuid4().hex}:")
    yield s
    s.reset()


@pytest.fixture
def limiter(store: StateStore, clock: Clock) -> Limiter:
    return Limiter(store, clock=clock)


def key(**kw: object) -> ApiKeyInfo:
    return ApiKeyInfo(key_hash="h", prefix="sk-llmp-abcd", id=int(uuid.uuid4().int % 10**6), **kw)  # type: ignore[arg-type]


async def test_limiter_refuses_past_the_key_rpm_with_retry_after(limiter: Limiter, clock: Clock) -> None:
    k = key(rpm=3)
    for _ in range(3):
        await limiter.admit(k, 10)
    with pytest.raises(LimitExceeded) as info:
        await limiter.admit(k, 10)
    assert info.value.status == 429 and info.value.retry_after == pytest.approx(20, abs=0.1)
    assert "3 requests" in info.value.message
    clock.advance(20.5)
    await limiter.admit(k, 10)


async def test_limiter_charges_tpm_with_the_real_count(limiter: Limiter) -> None:
    k = key(tpm=1000)
    await limiter.admit(k, 100)
    await limiter.settle(k, 100, 900, None)  # the estimate was 800 short: 100 tokens are left
    await limiter.admit(k, 100)
    with pytest.raises(LimitExceeded) as info:
        await limiter.admit(k, 100)
    assert "1000 tokens" in info.value.message


async def test_limiter_keeps_keys_apart(limiter: Limiter) -> None:
    a, b = key(rpm=1), key(rpm=1)
    await limiter.admit(a, 1)
    await limiter.admit(b, 1)
    with pytest.raises(LimitExceeded):
        await limiter.admit(a, 1)


async def test_limiter_refuses_a_spent_budget_until_the_period_ends(limiter: Limiter, clock: Clock) -> None:
    start = clock() - 3600
    k = key(budget_usd=1.0, budget_period="daily", period_started_at=start)
    await limiter.admit(k, 1)
    await limiter.settle(k, 1, 1, 0.6)
    await limiter.admit(k, 1)
    await limiter.settle(k, 1, 1, 0.6)
    with pytest.raises(LimitExceeded) as info:
        await limiter.admit(k, 1)
    assert info.value.code == "budget_exceeded" and "for this day" in info.value.message
    assert info.value.retry_after == pytest.approx(23 * 3600, abs=1)
    renewed = key(budget_usd=1.0, budget_period="daily", period_started_at=start + 86400)
    object.__setattr__(renewed, "id", k.id)
    await limiter.admit(renewed, 1)  # a new period counts from zero


async def test_limiter_never_forgets_settled_spend(limiter: Limiter) -> None:
    """After a restart (or a lost Redis) the snapshot's settled spend is the floor."""
    k = key(budget_usd=5.0, spent_usd=4.9)
    await limiter.admit(k, 1)
    await limiter.settle(k, 1, 1, 0.2)
    with pytest.raises(LimitExceeded) as info:
        await limiter.admit(k, 1)
    assert info.value.retry_after is None  # no period: no time to come back


async def test_limiter_admits_without_a_key_or_limits(limiter: Limiter) -> None:
    await limiter.admit(None, 10**9)
    for _ in range(100):
        await limiter.admit(key(), 10**6)


class BrokenStore(StateStore):
    async def take(self, costs: Sequence[tuple[Bucket, float]], now: float) -> float:
        raise StoreError("down")

    async def debit(self, bucket: Bucket, amount: float, now: float) -> None:
        raise StoreError("down")

    async def cooldowns(self, keys: Sequence[str], now: float) -> list[Cooldown | None]:
        raise StoreError("down")

    async def cool(self, key: str, **kw: object) -> Cooldown:  # type: ignore[override]
        raise StoreError("down")

    async def begin_trial(self, key: str, now: float, lease: float) -> bool:
        raise StoreError("down")

    async def clear(self, keys: Sequence[str]) -> None:
        raise StoreError("down")

    async def rr_order(self, group: str, members: Sequence[tuple[str, int]]) -> list[str]:
        raise StoreError("down")

    async def get(self, key: str) -> str | None:
        raise StoreError("down")

    async def put(self, key: str, value: str, ttl: float) -> None:
        raise StoreError("down")

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        raise StoreError("down")

    async def unlock(self, key: str, owner: str) -> None:
        raise StoreError("down")

    async def add_spend(self, key: str, amount: float, *, floor: float = 0.0, ttl: float) -> float:
        raise StoreError("down")

    async def spend(self, key: str) -> float:
        raise StoreError("down")

    def list_cooldowns(self) -> dict[str, Cooldown]:
        return {}

    def clear_cooldowns(self, path: str = "") -> int:
        return 0

    def set_spend(self, key: str, value: float, ttl: float, *, at_least: bool = False) -> float:
        raise StoreError("down")

    def reset(self) -> None:
        pass


async def test_limiter_fails_open_when_the_store_is_down() -> None:
    limiter = Limiter(BrokenStore())
    k = key(rpm=1, tpm=1, budget_usd=1.0)
    for _ in range(3):
        await limiter.admit(k, 100)
    await limiter.settle(k, 1, 100, 1.0)


async def test_router_fails_open_when_the_store_is_down() -> None:
    from llmproxy.routing import Router
    from llmproxy.runtime import Route, RoutingSettings

    p = ProviderConfig(name="a", type="openai", rpm=1)
    routes = [Route("m", "m", p, (Credential("k1", "a"), Credential("k2", "a")))]
    router = Router(BrokenStore())
    for _ in range(3):
        plan = await router.plan(routes, RoutingSettings(), session="s")
        assert len(plan.candidates) == 2 and await router.acquire(plan, plan.candidates[0]) == 0
        await router.succeed(plan, plan.candidates[0])
    firsts = {(await router.plan(routes, RoutingSettings())).candidates[0].credential.name for _ in range(4)}
    assert firsts == {"k1", "k2"}  # round-robin goes on in this process


def test_candidate_costs_read_provider_and_credential_limits() -> None:
    p = ProviderConfig(name="claude", type="claude", rpm=100, tpm=50_000, options={"credential_rpm": 20})
    plain, own = Credential("a", "claude"), Credential("b", "claude", extra={"rpm": 5, "tpm": 8000})
    assert [(b.key, b.capacity, c) for b, c in candidate_costs(p, plain, 300)] == [
        ("p:claude:rpm", 100, 1), ("p:claude:tpm", 50_000, 300), ("c:claude/a:rpm", 20, 1)]  # fmt: skip
    assert [(b.key, b.capacity) for b, _ in candidate_costs(p, own, 300)][2:] == [
        ("c:claude/b:rpm", 5), ("c:claude/b:tpm", 8000)]  # fmt: skip
    assert candidate_costs(ProviderConfig(name="x", type="openai"), plain, 300) == []


def test_period_end_follows_the_calendar() -> None:
    jan31 = datetime(2024, 1, 31, 12, tzinfo=UTC).timestamp()
    assert period_end("monthly", jan31) == datetime(2024, 2, 29, 12, tzinfo=UTC).timestamp()
    dec15 = datetime(2024, 12, 15, tzinfo=UTC).timestamp()
    assert period_end("monthly", dec15) == datetime(2025, 1, 15, tzinfo=UTC).timestamp()
    assert period_end("weekly", 0.0) == 7 * 86400
    assert period_end("none", 0.0) is None and period_end("daily", None) is None


def test_spend_key_and_estimate() -> None:
    assert spend_key(7, 1700000000.5) == "7:1700000000" and spend_key(7, None) == "7:0"
    assert estimate_tokens(b"x" * 400) == 100 and estimate_tokens(b"") == 1
