"""Key and user limits by reservation, and the upstream buckets of a candidate.

Every store-backed test runs on the in-memory store and, with REDIS_URL, on Redis: the
Lua scripts and the memory implementation must agree.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest

from llmproxy.errors import LimitExceeded, LLMProxyError
from llmproxy.limits import Limiter, LimitSettings, candidate_costs, estimate_tokens
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.reservations import Denial, Hold
from llmproxy.runtime import ApiKeyInfo, UserLimits
from llmproxy.state import Bucket, Cooldown, StateStore, StoreError
from tests.unit.stores import KINDS, Clock, make_store

JUNE_15_NOON = datetime(2026, 6, 15, 12, tzinfo=UTC).timestamp()  # a Monday


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.t = JUNE_15_NOON
    return c


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[StateStore]:
    s = make_store(request.param, clock, f"test:{uuid.uuid4().hex}:")
    yield s
    s.reset()
    await s.aclose()


@pytest.fixture
def limiter(store: StateStore, clock: Clock) -> Limiter:
    return Limiter(store, clock=clock)


def key(**kw: object) -> ApiKeyInfo:
    kw.setdefault("id", int(uuid.uuid4().int % 10**6))
    return ApiKeyInfo(key_hash="h", prefix="sk-llmp-abcd", **kw)  # type: ignore[arg-type]


async def test_limiter_refuses_past_the_key_rpm_with_retry_after(limiter: Limiter, clock: Clock) -> None:
    k = key(rpm=3)
    for _ in range(3):
        await limiter.release(await limiter.reserve(k, tokens=10))
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=10)
    assert info.value.status == 429 and info.value.code == "rate_limit_exceeded"
    assert info.value.retry_after == pytest.approx(20, abs=0.1)
    assert info.value.message == "key rate limit of 3 requests per minute reached"
    clock.advance(20.5)
    await limiter.reserve(k, tokens=10)


async def test_limiter_charges_tpm_with_the_real_count(limiter: Limiter) -> None:
    k = key(tpm=1000)
    await limiter.settle(await limiter.reserve(k, tokens=100), tokens=900, cost=None)  # 800 short: 100 left
    await limiter.reserve(k, tokens=100)
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=100)
    assert info.value.message == "key rate limit of 1000 tokens per minute reached"


async def test_limiter_refunds_the_tokens_of_a_released_request(limiter: Limiter) -> None:
    k = key(tpm=100)
    await limiter.release(await limiter.reserve(k, tokens=100))
    await limiter.reserve(k, tokens=100)


async def test_limiter_keeps_keys_apart(limiter: Limiter) -> None:
    a, b = key(rpm=1), key(rpm=1)
    await limiter.reserve(a, tokens=1)
    await limiter.reserve(b, tokens=1)
    with pytest.raises(LimitExceeded):
        await limiter.reserve(a, tokens=1)


async def test_limiter_admits_only_what_fits_beside_the_holds_in_flight(limiter: Limiter) -> None:
    k = key(budget_usd=1.0, budget_period="monthly")
    first = await limiter.reserve(k, tokens=1, cost=0.4)
    await limiter.reserve(k, tokens=1, cost=0.4)
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=1, cost=0.4)
    assert info.value.code == "budget_exceeded" and info.value.retry_after == 1.0
    assert "key budget of 1.00 USD per month is taken up by requests in flight" in info.value.message
    await limiter.settle(first, tokens=1, cost=0.1)  # it cost less than held: room again
    await limiter.reserve(k, tokens=1, cost=0.4)


async def test_limiter_lets_one_request_larger_than_the_rest_run_alone(limiter: Limiter) -> None:
    k = key(budget_usd=1.0)
    big = await limiter.reserve(k, tokens=1, cost=5.0)
    with pytest.raises(LimitExceeded):
        await limiter.reserve(k, tokens=1, cost=0.01)
    await limiter.settle(big, tokens=1, cost=1.2)
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=1, cost=0.01)
    assert info.value.message == "key budget of 1.00 USD reached"
    assert info.value.retry_after is None  # no period: no time to come back


async def test_limiter_resets_a_daily_budget_at_midnight(limiter: Limiter, clock: Clock) -> None:
    k = key(budget_usd=1.0, budget_period="daily")
    await limiter.settle(await limiter.reserve(k, tokens=1, cost=0.5), tokens=1, cost=1.0)
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=1, cost=0.5)
    assert info.value.message == "key budget of 1.00 USD per day reached"
    assert info.value.retry_after == pytest.approx(12 * 3600)
    clock.advance(12 * 3600 - 1)
    with pytest.raises(LimitExceeded):
        await limiter.reserve(k, tokens=1, cost=0.5)
    clock.advance(1)
    await limiter.reserve(k, tokens=1, cost=0.5)


@pytest.mark.parametrize(("period", "reset"), [("weekly", datetime(2026, 6, 22, tzinfo=UTC)),
                                               ("monthly", datetime(2026, 7, 1, tzinfo=UTC))])  # fmt: skip
async def test_limiter_resets_weekly_and_monthly_budgets_by_the_calendar(
    limiter: Limiter, clock: Clock, period: str, reset: datetime
) -> None:
    k = key(budget_usd=5.0, budget_period=period)
    await limiter.settle(await limiter.reserve(k, tokens=1), tokens=1, cost=5.0)
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=1)
    assert info.value.retry_after == pytest.approx(reset.timestamp() - clock())
    clock.t = reset.timestamp()
    await limiter.reserve(k, tokens=1)


async def test_limiter_applies_the_user_budget_across_the_users_keys(limiter: Limiter) -> None:
    user = UserLimits(id=41, budget_usd=1.0, budget_period="monthly")
    a, b = key(user_id=41, user=user), key(user_id=41, user=user)
    await limiter.settle(await limiter.reserve(a, tokens=1, cost=0.6), tokens=1, cost=0.6)
    await limiter.settle(await limiter.reserve(b, tokens=1, cost=0.6), tokens=1, cost=0.6)
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(a, tokens=1, cost=0.1)
    assert info.value.message == "user budget of 1.00 USD per month reached"


async def test_limiter_counts_a_user_budget_from_a_staff_reset_and_takes_a_floor_only_from_it(
    limiter: Limiter, clock: Clock
) -> None:
    """A user's ``period_started_at`` later than the calendar start begins a fresh counter;
    a floor summed from the calendar start (before the reset) no longer counts."""
    spent = UserLimits(id=45, budget_usd=1.0, budget_period="monthly", spent_usd=1.0,
                       spent_period_start=datetime(2026, 6, 1, tzinfo=UTC).timestamp())  # fmt: skip
    with pytest.raises(LimitExceeded):
        await limiter.reserve(key(user=spent), tokens=1, cost=0.1)
    reset = UserLimits(id=45, budget_usd=1.0, budget_period="monthly", spent_usd=1.0,
                       spent_period_start=spent.spent_period_start, period_started_at=clock() - 60)  # fmt: skip
    k = key(user=reset)
    assert limiter.spend_key("u:45", "monthly", reset_at=reset.period_started_at) == f"u:45:{int(clock() - 60)}"
    await limiter.settle(await limiter.reserve(k, tokens=1, cost=0.9), tokens=1, cost=1.0)
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=1, cost=0.2)
    assert info.value.message == "user budget of 1.00 USD per month reached"


async def test_limiter_applies_the_user_rpm_and_the_key_rpm(limiter: Limiter) -> None:
    user = UserLimits(id=42, rpm=2)
    a, b = key(user=user, rpm=5), key(user=user)
    await limiter.reserve(a, tokens=1)
    await limiter.reserve(b, tokens=1)
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(a, tokens=1)
    assert info.value.message == "user rate limit of 2 requests per minute reached"


async def test_limiter_caps_parallel_requests_and_frees_the_slot_of_a_dead_process(
    limiter: Limiter, clock: Clock
) -> None:
    k = key(max_parallel=2)
    first = await limiter.reserve(k, tokens=1)
    await limiter.reserve(k, tokens=1)  # never settled: its process died
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=1)
    assert info.value.message == "key limit of 2 parallel requests reached"
    await limiter.release(first)
    await limiter.reserve(k, tokens=1)
    with pytest.raises(LimitExceeded):
        await limiter.reserve(k, tokens=1)
    clock.advance(limiter.settings.reservation_ttl + 1)  # both holds expired
    await limiter.reserve(k, tokens=1)
    await limiter.reserve(k, tokens=1)


async def test_limiter_gives_back_the_budget_hold_of_a_dead_process_when_it_expires(
    limiter: Limiter, clock: Clock
) -> None:
    """A process killed mid-request never settles: its hold stops counting after ``reservation_ttl``."""
    k = key(budget_usd=1.0, budget_period="daily")
    await limiter.reserve(k, tokens=1, cost=0.9)  # its process died: never settled nor released
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=1, cost=0.5)
    assert (
        info.value.message == "key budget of 1.00 USD per day is taken up by requests in flight; retry when they finish"
    )
    clock.advance(limiter.settings.reservation_ttl - 1)
    with pytest.raises(LimitExceeded):
        await limiter.reserve(k, tokens=1, cost=0.5)
    clock.advance(2)
    res = await limiter.reserve(k, tokens=1, cost=0.5)
    await limiter.settle(res, tokens=1, cost=0.4)
    assert limiter.store.spends([limiter.spend_key(f"k:{k.id}", "daily")]) == [
        pytest.approx(0.4)
    ]  # the dead hold cost nothing


async def test_a_renewed_hold_outlives_its_ttl_counts_against_the_budget_and_is_charged_once(
    limiter: Limiter, clock: Clock
) -> None:
    """A request longer than ``reservation_ttl`` (a long stream) keeps its hold while it is renewed."""
    k = key(budget_usd=1.0, budget_period="daily")
    ttl = limiter.settings.reservation_ttl
    res = await limiter.reserve(k, tokens=1, cost=0.9)
    for _ in range(4):  # 4 x 2/3 of the TTL: well past the first expiry
        clock.advance(ttl * 2 / 3)
        assert await limiter.renew(res)
        with pytest.raises(LimitExceeded) as info:
            await limiter.reserve(k, tokens=1, cost=0.5)
        assert info.value.message.endswith("is taken up by requests in flight; retry when they finish")
    await limiter.settle(res, tokens=1, cost=0.8)
    await limiter.settle(res, tokens=1, cost=0.8)  # a second settle charges nothing
    assert not await limiter.renew(res)  # settled: nothing to renew, and nothing brought back
    spend = [limiter.spend_key(f"k:{k.id}", "daily")]
    assert limiter.store.spends(spend) == [pytest.approx(0.8)]
    small = await limiter.reserve(k, tokens=1, cost=0.15)  # the settled hold holds nothing any more
    await limiter.settle(small, tokens=1, cost=0.15)
    assert limiter.store.spends(spend) == [pytest.approx(0.95)]


async def test_a_hold_whose_renewals_stop_expires_one_ttl_after_the_last_and_is_not_revived(
    limiter: Limiter, clock: Clock
) -> None:
    """The process "dies" after one renewal: the hold lasts one TTL past it, then is gone for good."""
    k = key(budget_usd=1.0, max_parallel=1)
    ttl = limiter.settings.reservation_ttl
    res = await limiter.reserve(k, tokens=1, cost=0.9)
    clock.advance(ttl / 3)
    assert await limiter.renew(res)
    clock.advance(ttl - 1)  # past the first expiry, within the renewed one
    with pytest.raises(LimitExceeded) as info:
        await limiter.reserve(k, tokens=1, cost=0.05)
    assert info.value.message == "key limit of 1 parallel requests reached"
    clock.advance(2)
    assert not await limiter.renew(res)  # expired: a late renewal does not bring it back
    other = await limiter.reserve(k, tokens=1, cost=0.5)
    await limiter.settle(other, tokens=1, cost=0.5)
    await limiter.settle(res, tokens=1, cost=0.0)  # the expired hold's late end changes nothing
    assert limiter.store.spends([limiter.spend_key(f"k:{k.id}", "none")]) == [pytest.approx(0.5)]


async def test_the_limiter_renews_a_running_hold_from_a_timer_until_it_is_settled(
    store: StateStore, clock: Clock
) -> None:
    """A timer per held request renews it every third of the TTL; settling cancels it, and a
    reservation dropped without settling is not kept alive by its timer."""
    limiter = Limiter(store, clock=clock, settings=LimitSettings(reservation_ttl=0.3))
    k = key(max_parallel=1)
    res = await limiter.reserve(k, tokens=1)
    first = res.timer
    assert first is not None
    clock.advance(0.2)  # the renewal, when it comes, holds until 0.5
    for _ in range(500):  # the renewal runs ~0.1 s after the admission
        if res.timer is not first:
            break
        await asyncio.sleep(0.01)
    assert res.timer is not first and res.timer is not None  # renewed and rescheduled
    clock.advance(0.15)  # past the first expiry (0.3), within the renewed one
    with pytest.raises(LimitExceeded):
        await limiter.reserve(k, tokens=1)
    timer = res.timer
    await limiter.settle(res, tokens=1, cost=0.0)
    assert res.timer is None and timer.cancelled()
    await limiter.release(await limiter.reserve(k, tokens=1))
    gone = weakref.ref(await limiter.reserve(key(max_parallel=1), tokens=1))
    gc.collect()
    assert gone() is None
    none = await limiter.reserve(key(rpm=5), tokens=1)  # no line counts holds: no timer at all
    assert none.timer is None


async def test_limiter_refuses_nothing_when_a_refused_line_would_have_taken(limiter: Limiter) -> None:
    """All or nothing: a request the user's limit refuses takes nothing from the key's RPM."""
    user = UserLimits(id=43, max_parallel=1)
    k = key(user=user, rpm=2)
    await limiter.reserve(k, tokens=1)
    for _ in range(3):
        with pytest.raises(LimitExceeded):
            await limiter.reserve(k, tokens=1)
    await limiter.reserve(key(user=UserLimits(id=44), rpm=2, id=k.id), tokens=1)  # the key's 2nd request


async def test_limiter_settles_once(limiter: Limiter, store: StateStore) -> None:
    k = key(budget_usd=10.0)
    res = await limiter.reserve(k, tokens=1, cost=1.0)
    await limiter.settle(res, tokens=1, cost=2.0)
    await limiter.settle(res, tokens=1, cost=2.0)
    assert store.spends([limiter.spend_key(f"k:{k.id}", "none")]) == [2.0]


async def test_limiter_never_forgets_settled_spend_of_this_period(limiter: Limiter, clock: Clock) -> None:
    """After a restart (or a lost Redis) the snapshot's settled spend is the floor, once."""
    month = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    k = key(budget_usd=5.0, budget_period="monthly", spent_usd=4.9, spent_period_start=month)
    await limiter.settle(await limiter.reserve(k, tokens=1), tokens=1, cost=0.2)
    with pytest.raises(LimitExceeded):
        await limiter.reserve(k, tokens=1)
    assert limiter.store.spends([limiter.spend_key(f"k:{k.id}", "monthly")]) == [pytest.approx(5.1)]
    stale = key(budget_usd=5.0, budget_period="monthly", spent_usd=4.9, spent_period_start=month - 86400 * 31)
    await limiter.reserve(stale, tokens=1)  # last month's spend is not this month's floor


async def test_limiter_holds_the_budget_under_concurrency(limiter: Limiter) -> None:
    k = key(budget_usd=0.01, budget_period="daily")

    async def one() -> bool:
        try:
            res = await limiter.reserve(k, tokens=10, cost=0.0004)
        except LimitExceeded:
            return False
        await asyncio.sleep(0)
        await limiter.settle(res, tokens=10, cost=0.0003)
        return True

    results = await asyncio.gather(*(one() for _ in range(200)))
    spent = limiter.store.spends([limiter.spend_key(f"k:{k.id}", "daily")])[0]
    assert spent == pytest.approx(0.0003 * sum(results))
    assert spent <= 0.01 + 0.0004 and not all(results)


async def test_limiter_admits_without_a_key_or_limits(limiter: Limiter) -> None:
    assert (await limiter.reserve(None, tokens=10**9)).hold is None
    for _ in range(100):
        await limiter.reserve(key(), tokens=10**6, cost=100.0)


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

    async def reserve(self, hold: Hold, now: float) -> Denial | None:
        raise StoreError("down")

    async def renew(self, hold: Hold, now: float) -> int:
        raise StoreError("down")

    async def settle(self, hold: Hold, tokens: int, cost: float, now: float) -> None:
        raise StoreError("down")

    def spends(self, keys: Sequence[str]) -> list[float]:
        raise StoreError("down")

    def list_cooldowns(self) -> dict[str, Cooldown]:
        return {}

    def clear_cooldowns(self, path: str = "") -> int:
        return 0

    def set_spend(self, key: str, value: float, ttl: float, *, at_least: bool = False) -> float:
        raise StoreError("down")

    def reset(self) -> None:
        pass


async def test_limiter_fails_open_for_rate_limits_and_closed_for_budgets_when_the_store_is_down() -> None:
    limiter = Limiter(BrokenStore())
    k = key(rpm=1, tpm=1)
    for _ in range(3):
        await limiter.settle(await limiter.reserve(k, tokens=100), tokens=100, cost=1.0)
    with pytest.raises(LLMProxyError) as info:
        await limiter.reserve(key(budget_usd=1.0), tokens=1)
    assert info.value.status == 503 and info.value.code == "limits_unavailable"
    assert limiter.store_errors[("rate_limit", "admitted")] == 3
    assert limiter.store_errors[("budget", "refused")] == 1


async def test_limiter_follows_the_on_store_error_setting() -> None:
    settings = LimitSettings.from_mapping({"on_store_error": {"rate_limits": "closed", "budgets": "open"}})
    limiter = Limiter(BrokenStore(), settings=settings)
    await limiter.reserve(key(budget_usd=1.0), tokens=1)
    with pytest.raises(LLMProxyError):
        await limiter.reserve(key(rpm=5), tokens=1)


def test_limit_settings_list_every_bad_entry() -> None:
    with pytest.raises(ValueError) as info:
        LimitSettings.from_mapping({"on_store_error": {"budgets": "maybe", "x": "open"}, "reservation_ttl": -1,
                                    "speed": 1}, time_zone="Mars/Olympus")  # fmt: skip
    text = str(info.value)
    for part in ("LLMPROXY_TIME_ZONE", "on_store_error.budgets", "on_store_error.x", "reservation_ttl", "speed"):
        assert part in text
    assert LimitSettings.from_mapping({"on_store_error": "closed"}).rate_limits_on_store_error == "closed"
    assert LimitSettings.from_mapping(None, time_zone="Europe/Berlin").time_zone == "Europe/Berlin"


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


def test_estimate_tokens() -> None:
    assert estimate_tokens(b"x" * 400) == 100 and estimate_tokens(b"") == 1
