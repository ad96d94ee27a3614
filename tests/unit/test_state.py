"""StateStore: the same behaviour from the in-memory store and, when REDIS_URL is set, Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from llmproxy.state import MAX_COOLDOWN, Bucket, MemoryStateStore, StateStore
from tests.unit.stores import Clock


async def test_store_bucket_refuses_then_refills(store: StateStore, clock: Clock) -> None:
    b = Bucket.per_minute("k:1:rpm", 2)
    assert await store.take([(b, 1)], clock()) == 0
    assert await store.take([(b, 1)], clock()) == 0
    wait = await store.take([(b, 1)], clock())
    assert wait == pytest.approx(30.0, abs=0.01)
    clock.advance(30.5)
    assert await store.take([(b, 1)], clock()) == 0


async def test_store_take_is_all_or_nothing(store: StateStore, clock: Clock) -> None:
    roomy, tight = Bucket.per_minute("p:x:rpm", 100), Bucket.per_minute("c:x/y:rpm", 1)
    assert await store.take([(roomy, 1), (tight, 1)], clock()) == 0
    assert await store.take([(roomy, 1), (tight, 1)], clock()) > 0
    # The refused take left the roomy bucket alone: 99 more fit, the 100th does not.
    for _ in range(99):
        assert await store.take([(roomy, 1)], clock()) == 0
    assert await store.take([(roomy, 1)], clock()) > 0


async def test_store_debit_corrects_after_the_fact(store: StateStore, clock: Clock) -> None:
    b = Bucket.per_minute("k:1:tpm", 1000)
    assert await store.take([(b, 100)], clock()) == 0
    await store.debit(b, 1400, clock())  # the upstream counted 1500, not 100
    wait = await store.take([(b, 1)], clock())
    assert wait == pytest.approx((1 + 500) / (1000 / 60), rel=0.01)
    await store.debit(b, -10_000, clock())  # a refund never overfills
    assert await store.take([(b, 1000)], clock()) == 0
    assert await store.take([(b, 1)], clock()) > 0


async def test_store_lets_a_request_larger_than_the_bucket_through_when_full(store: StateStore, clock: Clock) -> None:
    b = Bucket.per_minute("k:1:tpm", 100)
    assert await store.take([(b, 500)], clock()) == 0
    assert await store.take([(b, 1)], clock()) > 0


async def test_store_cooldown_doubles_only_after_it_ended(store: StateStore, clock: Clock) -> None:
    cd = await store.cool("a/k1/m", base=10, fixed=None, cap=900, reason="error", now=clock())
    assert (cd.until - clock(), cd.failures) == (pytest.approx(10), 1)
    # A burst of failures inside one cooldown is one failure.
    for _ in range(5):
        cd = await store.cool("a/k1/m", base=10, fixed=None, cap=900, reason="error", now=clock())
    assert cd.failures == 1 and cd.until - clock() == pytest.approx(10)
    clock.advance(11)
    cd = await store.cool("a/k1/m", base=10, fixed=None, cap=900, reason="error", now=clock())
    assert (cd.until - clock(), cd.failures) == (pytest.approx(20), 2)


async def test_store_cooldown_honours_a_fixed_wait_within_the_hard_cap(store: StateStore, clock: Clock) -> None:
    cd = await store.cool("a/k1/m", base=60, fixed=3.5, cap=900, reason="rate_limited", now=clock())
    assert cd.until - clock() == pytest.approx(3.5) and cd.rate_limited
    cd = await store.cool("a/k2/m", base=60, fixed=10 * MAX_COOLDOWN, cap=900, reason="rate_limited", now=clock())
    assert cd.until - clock() == pytest.approx(MAX_COOLDOWN)


async def test_store_half_open_allows_one_trial(store: StateStore, clock: Clock) -> None:
    assert await store.begin_trial("a/k1/m", clock(), 30) is True  # nothing cooled: free
    await store.cool("a/k1/m", base=5, fixed=None, cap=900, reason="error", now=clock())
    assert await store.begin_trial("a/k1/m", clock(), 30) is False
    clock.advance(6)
    assert await store.begin_trial("a/k1/m", clock(), 30) is True
    assert await store.begin_trial("a/k1/m", clock(), 30) is False  # the lease is taken
    [rec] = await store.cooldowns(["a/k1/m"], clock())
    assert rec is not None and rec.blocks(clock()) and rec.recovers_at() == pytest.approx(clock() + 30)
    await store.clear(["a/k1/m"])
    assert await store.cooldowns(["a/k1/m", "nope"], clock()) == [None, None]


async def test_store_round_robin_is_exact(store: StateStore) -> None:
    members = [("a", 5), ("b", 3), ("c", 2)]
    firsts = [(await store.rr_order("m:0", members))[0] for _ in range(1000)]
    assert (firsts.count("a"), firsts.count("b"), firsts.count("c")) == (500, 300, 200)
    order = await store.rr_order("m:0", members)
    assert sorted(order) == ["a", "b", "c"]


async def test_store_round_robin_is_smooth(store: StateStore) -> None:
    firsts = [(await store.rr_order("g", [("a", 5), ("b", 1), ("c", 1)]))[0] for _ in range(7)]
    assert firsts == ["a", "a", "b", "a", "c", "a", "a"]  # nginx's sequence: no run of five


async def test_store_values_expire(store: StateStore, clock: Clock) -> None:
    await store.put("aff:m:s1", "a/k1/m", ttl=0.2)
    assert await store.get("aff:m:s1") == "a/k1/m"
    clock.advance(1)
    await asyncio.sleep(0.25)
    assert await store.get("aff:m:s1") is None


async def test_store_spend_never_reads_below_its_floor(store: StateStore) -> None:
    assert await store.spend("7:0") == 0
    assert await store.add_spend("7:0", 0.5, floor=2.0, ttl=60) == pytest.approx(2.5)
    assert await store.add_spend("7:0", 0.25, floor=0.0, ttl=60) == pytest.approx(2.75)
    assert store.set_spend("7:0", 1.0, 60, at_least=True) == pytest.approx(2.75)
    assert store.set_spend("7:0", 1.0, 60) == pytest.approx(1.0)
    assert await store.spend("7:0") == pytest.approx(1.0)


async def test_store_lists_and_clears_cooldowns_by_path(store: StateStore, clock: Clock) -> None:
    for key in ("a/k1/m1", "a/k1/m2", "a/k1", "a/k10/m1", "b/k1/m1"):
        await store.cool(key, base=60, fixed=None, cap=900, reason="error", now=clock())
    assert set(store.list_cooldowns()) == {"a/k1/m1", "a/k1/m2", "a/k1", "a/k10/m1", "b/k1/m1"}
    assert store.clear_cooldowns("a/k1") == 3
    assert set(store.list_cooldowns()) == {"a/k10/m1", "b/k1/m1"}
    assert store.clear_cooldowns() == 2
    assert store.list_cooldowns() == {}


async def test_store_reset_forgets_everything(store: StateStore, clock: Clock) -> None:
    b = Bucket.per_minute("k:1:rpm", 1)
    await store.take([(b, 1)], clock())
    await store.cool("a/k1/m", base=60, fixed=None, cap=900, reason="error", now=clock())
    store.reset()
    assert await store.take([(b, 1)], clock()) == 0
    assert store.list_cooldowns() == {}


async def test_memory_store_forgets_expired_sessions(clock: Clock) -> None:
    store = MemoryStateStore(clock)
    for i in range(1024):
        await store.put(f"aff:m:{i}", "a/k1/m", ttl=1)
    clock.advance(2)
    await store.put("aff:m:new", "a/k1/m", ttl=60)
    assert len(store._values) == 1 and await store.get("aff:m:new") == "a/k1/m"


async def test_store_lock_is_held_by_one_owner_until_released_or_expired(store: StateStore, clock: Clock) -> None:
    key = f"refresh:{uuid.uuid4().hex}"
    assert await store.lock(key, "a", 0.3)
    assert not await store.lock(key, "b", 0.3)
    await store.unlock(key, "b")  # not b's lease: still held
    assert not await store.lock(key, "b", 0.3)
    await store.unlock(key, "a")
    assert await store.lock(key, "b", 0.3)
    clock.advance(1)
    await asyncio.sleep(0.35)  # Redis expires by its own clock
    assert await store.lock(key, "c", 0.3)
