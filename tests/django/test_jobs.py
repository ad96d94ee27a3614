"""Background jobs: schedules, token refresh, usage rollups and retention, budget periods, task guards."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management.sql import emit_post_migrate_signal
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts import periods
from accounts.models import ApiKey
from llmproxy.periods import bounds
from proxy import tasks
from proxy.jobs import budget_periods, locks, rollups, token_refresh
from proxy.jobs import health_checks as checks
from proxy.jobs.schedules import SCHEDULES, setup_schedules
from proxy.jobs.token_refresh import REFRESHERS, RefreshedTokens
from proxy.models import ConfigVersion, Credential, Provider, UsageDaily, UsageRecord, UsageRollupDay
from tests import factories

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)  # a Wednesday
HOUR = timedelta(hours=1)
TASK_LOCKS = [s.task.rsplit(".", 1)[-1] for s in SCHEDULES]


@pytest.fixture(autouse=True)
def clean_job_state() -> Iterator[None]:
    """Locks and the rollup watermark live in the cache, which outlives a test's database."""
    keys = [rollups.WATERMARK_KEY, *(locks.LOCK_PREFIX + n for n in TASK_LOCKS)]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


# -- schedules ----------------------------------------------------------------------------------


def test_it_creates_each_schedule_once_and_keeps_admin_changes() -> None:
    names = {s.name for s in SCHEDULES}
    assert set(PeriodicTask.objects.filter(name__in=names).values_list("name", flat=True)) == names  # after migrate
    intervals = IntervalSchedule.objects.count()
    assert setup_schedules() == 0
    assert (PeriodicTask.objects.filter(name__in=names).count(), IntervalSchedule.objects.count()) == (5, intervals)

    health = PeriodicTask.objects.get(task="proxy.tasks.health_checks")
    assert (health.interval.every, health.interval.period) == (30, IntervalSchedule.SECONDS)
    health.interval = IntervalSchedule.objects.create(every=90, period=IntervalSchedule.SECONDS)
    health.save()
    PeriodicTask.objects.filter(task="proxy.tasks.rollup_usage").update(enabled=False)
    PeriodicTask.objects.filter(task="proxy.tasks.purge_usage").delete()

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")  # what every migrate ends with
    assert PeriodicTask.objects.filter(name__in=names).count() == 5
    assert PeriodicTask.objects.get(task="proxy.tasks.health_checks").interval.every == 90
    assert not PeriodicTask.objects.get(task="proxy.tasks.rollup_usage").enabled
    assert PeriodicTask.objects.get(task="proxy.tasks.purge_usage").interval.every == 3600
    assert setup_schedules() == 0


def test_it_registers_every_scheduled_task_with_celery() -> None:
    from llmproxy_site.celery import app

    app.loader.import_default_modules()
    for s in SCHEDULES:
        assert s.task in app.tasks, s.task


# -- token refresh ---------------------------------------------------------------------------------


def _cred(provider: Provider, name: str, expires_in: timedelta | None, **kw: Any) -> Credential:
    expires = NOW + expires_in if expires_in is not None else None
    return Credential.objects.create(provider=provider, name=name, access_token="old-access",
                                     refresh_token="old-refresh", expires_at=expires, **kw)  # fmt: skip


def test_it_refreshes_only_credentials_that_expire_soon(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    seen: list[tuple[str, str]] = []

    def fake_refresher(cred: Credential) -> RefreshedTokens:
        seen.append((cred.name, cred.refresh_token))
        return RefreshedTokens("new-access", NOW + timedelta(hours=1), refresh_token="new-refresh", extra={"n": 1})

    monkeypatch.setitem(REFRESHERS, "claude", fake_refresher)
    claude = Provider.objects.create(name="claude-oauth", type="claude", auth_type="oauth")
    other = Provider.objects.create(name="openai-oauth", type="openai", auth_type="oauth")  # no refresher for openai
    due = _cred(claude, "due", timedelta(minutes=5), extra={"keep": True})
    expired = _cred(claude, "expired", -timedelta(minutes=1))
    later = _cred(claude, "later", timedelta(hours=2))
    _cred(claude, "no-expiry", None)
    _cred(claude, "disabled", timedelta(minutes=1), enabled=False)
    _cred(other, "no-refresher", timedelta(minutes=1))
    before = ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0

    with django_capture_on_commit_callbacks(execute=True):
        summary = token_refresh.refresh_due_credentials(now=NOW)

    assert summary.as_dict() == {"due": 2, "refreshed": 2}
    assert sorted(seen) == [("due", "old-refresh"), ("expired", "old-refresh")]
    for c in (due, expired):
        c.refresh_from_db()
        assert (c.access_token, c.refresh_token, c.expires_at) == (
            "new-access",
            "new-refresh",
            NOW + timedelta(hours=1),
        )
    assert due.extra == {"keep": True, "n": 1}
    later.refresh_from_db()
    assert later.access_token == "old-access"
    assert ConfigVersion.objects.get(pk=1).version > before  # every process picks up the new token
    assert token_refresh.refresh_due_credentials(now=NOW).as_dict() == {"due": 0}  # nothing is due any more


def test_it_keeps_refreshing_the_rest_when_one_refresher_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def flaky(cred: Credential) -> RefreshedTokens:
        if cred.name == "bad":
            raise RuntimeError("invalid_grant")
        return RefreshedTokens("fresh", NOW + timedelta(hours=1))

    monkeypatch.setitem(REFRESHERS, "claude", flaky)
    p = Provider.objects.create(name="claude-oauth", type="claude", auth_type="oauth")
    bad = _cred(p, "bad", timedelta(minutes=1))
    good = _cred(p, "good", timedelta(minutes=2))
    assert token_refresh.refresh_due_credentials(now=NOW).as_dict() == {"due": 2, "failed": 1, "refreshed": 1}
    bad.refresh_from_db()
    good.refresh_from_db()
    assert (bad.access_token, bad.refresh_token) == ("old-access", "old-refresh")
    assert (good.access_token, good.refresh_token) == ("fresh", "old-refresh")  # None keeps the stored one


def test_it_runs_async_refreshers_and_never_refreshes_one_credential_twice_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    async def refresher(cred: Credential) -> RefreshedTokens:
        calls.append(cred.pk)
        return RefreshedTokens("async-token", NOW + timedelta(hours=1))

    monkeypatch.setitem(REFRESHERS, "copilot", refresher)
    p = Provider.objects.create(name="copilot", type="copilot", auth_type="device_flow")
    c = _cred(p, "me", timedelta(minutes=1))
    assert locks.claim(f"refresh:{c.pk}", 60)  # another process is refreshing it right now
    assert token_refresh.refresh_credential(c.pk, now=NOW) == "busy"
    assert calls == []
    locks.release(f"refresh:{c.pk}")
    assert token_refresh.refresh_credential(c.pk, now=NOW) == "refreshed"
    c.refresh_from_db()
    assert c.access_token == "async-token"
    assert token_refresh.refresh_credential(c.pk, now=NOW) == "not_due"
    assert tasks.refresh_credential(c.pk) == "refreshed"  # the on-demand task forces it
    assert calls == [c.pk, c.pk]
    assert token_refresh.refresh_credential(10**9) == "missing"


# -- usage rollups ---------------------------------------------------------------------------------


def _rec(at: datetime, *, user: int | None = 1, key: int | None = 1, model: str = "gpt-test",
         provider: str = "up", status: int = 200, prompt: int = 10, completion: int = 5,
         cost: str | None = "0.00012345", cached: int = 0, reasoning: int = 0) -> UsageRecord:  # fmt: skip
    return UsageRecord(
        request_id=f"r-{at.timestamp()}-{user}-{key}-{model}-{status}-{prompt}", created_at=at, user_id=user,
        key_id=key, ingress="openai_chat", model=model, upstream_model=model, provider=provider, status_code=status,
        prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached, reasoning_tokens=reasoning,
        cost_usd=None if cost is None else Decimal(cost),
    )  # fmt: skip


def _expected() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The rollups computed here, in Python, from every raw row but the last ``SETTLE`` of today."""
    out: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, Decimal(0)])
    for r in UsageRecord.objects.filter(created_at__lt=NOW - rollups.SETTLE):
        row = out[(r.created_at.astimezone(UTC).date(), r.user_id or 0, r.key_id or 0, r.model, r.provider)]
        for i, v in enumerate((1, int(r.status_code >= 400), r.prompt_tokens, r.completion_tokens, r.cached_tokens,
                               r.reasoning_tokens, r.cost_usd or Decimal(0))):  # fmt: skip
            row[i] += v
    return {k: tuple(v) for k, v in out.items()}


def _rollups() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {
        (d.day, d.user_id, d.key_id, d.model, d.provider): (
            d.requests, d.errors, d.prompt_tokens, d.completion_tokens, d.cached_tokens, d.reasoning_tokens,
            d.cost_usd,
        )
        for d in UsageDaily.objects.all()
    }  # fmt: skip


def _seed() -> None:
    yesterday = NOW - timedelta(days=1)
    UsageRecord.objects.bulk_create([
        _rec(yesterday.replace(hour=0, minute=0, second=0)),  # the first instant of the day
        _rec(yesterday, prompt=100, completion=50, cached=20, cost="0.1"),
        _rec(yesterday, status=429, prompt=0, completion=0, cost=None),
        _rec(yesterday, user=2, key=3, model="claude-x", provider="anthropic", reasoning=7),
        _rec(NOW.replace(hour=0, minute=0, second=0) - timedelta(microseconds=1), user=2, key=3),  # last of yesterday
        _rec(NOW - HOUR, user=None, key=None, status=401, prompt=0, completion=0, cost=None),  # a bad key: no owner
        _rec(NOW - HOUR - timedelta(minutes=1), cost="0.33333333"),
        _rec(NOW - HOUR - timedelta(minutes=2), cost="0.66666667", cached=3),
        _rec(NOW - timedelta(minutes=1), cost="5"),  # too young: the reports read it raw
    ])  # fmt: skip


def test_it_rolls_usage_up_per_day_user_key_model_and_provider() -> None:
    _seed()
    days = rollups.rollup_usage(now=NOW)
    assert days == [date(2026, 3, 17), date(2026, 3, 18)]
    got = _rollups()
    assert got == _expected()
    yesterday = got[(date(2026, 3, 17), 1, 1, "gpt-test", "up")]
    assert yesterday == (3, 1, 110, 55, 20, 0, Decimal("0.10012345"))
    assert got[(date(2026, 3, 17), 2, 3, "gpt-test", "up")][0] == 1  # 23:59:59.999999 stays on its day
    assert got[(date(2026, 3, 18), 0, 0, "gpt-test", "up")] == (1, 1, 0, 0, 0, 0, Decimal(0))
    assert got[(date(2026, 3, 18), 1, 1, "gpt-test", "up")][6] == Decimal("1.00000000")  # not the $5 of a minute ago
    marks = dict(UsageRollupDay.objects.values_list("day", "rolled_until"))
    assert marks == {date(2026, 3, 17): datetime(2026, 3, 18, tzinfo=UTC), date(2026, 3, 18): NOW - rollups.SETTLE}
    assert rollups.rollup_usage(now=NOW + timedelta(days=1)) == [date(2026, 3, 18)]  # settled since: once more, whole
    assert UsageRollupDay.objects.get(day=date(2026, 3, 18)).rolled_until == datetime(2026, 3, 19, tzinfo=UTC)
    assert UsageDaily.objects.get(day=date(2026, 3, 18), user_id=1, model="gpt-test").cost_usd == Decimal("6")


def test_it_gives_the_same_rollups_when_run_twice_and_recomputes_only_touched_days() -> None:
    _seed()
    rollups.rollup_usage(now=NOW)
    first = _rollups()
    rollups.rollup_usage(now=NOW)
    assert _rollups() == first
    assert rollups.rollup_usage(now=NOW) == []  # nothing new since the last two runs

    older = NOW - timedelta(days=5)
    UsageRecord.objects.bulk_create([_rec(older, model="late"), _rec(NOW - timedelta(days=1), prompt=1000)])
    assert rollups.rollup_usage(now=NOW) == [older.date(), date(2026, 3, 17)]
    assert _rollups() == _expected()

    cache.delete(rollups.WATERMARK_KEY)  # the cache was flushed: every day is recomputed, same result
    before = _rollups()
    assert rollups.rollup_usage(now=NOW) == [older.date() + timedelta(days=i) for i in range(6)]
    assert _rollups() == before


def test_it_drops_rollup_groups_whose_raw_rows_are_gone() -> None:
    _seed()
    rollups.rollup_usage(now=NOW)
    UsageRecord.objects.filter(model="claude-x").delete()
    assert rollups.rollup_day(date(2026, 3, 17)) == 2
    assert _rollups() == _expected()
    assert not UsageDaily.objects.filter(model="claude-x").exists()


# -- retention -------------------------------------------------------------------------------------


def test_it_purges_raw_rows_older_than_the_retention_and_keeps_their_rollups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMPROXY_USAGE_RETENTION_DAYS", raising=False)
    cutoff = datetime(2025, 12, 18, tzinfo=UTC)  # 90 days before 2026-03-18, at midnight
    assert rollups.retention_cutoff(NOW) == cutoff
    UsageRecord.objects.bulk_create([
        _rec(cutoff - timedelta(days=10)), _rec(cutoff - timedelta(days=10), status=500),
        _rec(cutoff - timedelta(microseconds=1)),
        _rec(cutoff), _rec(NOW),
    ])  # fmt: skip
    assert rollups.purge_usage(now=NOW, batch=1) == 3  # never rolled up before: rolled up, then purged
    assert sorted(UsageRecord.objects.values_list("created_at", flat=True)) == [cutoff, NOW]
    old = {d.day: (d.requests, d.errors) for d in UsageDaily.objects.filter(day__lt=cutoff.date())}
    assert old == {date(2025, 12, 8): (2, 1), date(2025, 12, 17): (1, 0)}

    cache.delete(rollups.WATERMARK_KEY)
    UsageRecord.objects.bulk_create([_rec(cutoff - timedelta(days=10), prompt=1)])  # a straggler for a purged day
    rollups.rollup_usage(now=NOW)  # must not recompute the purged day from what is left of it
    assert UsageDaily.objects.get(day=date(2025, 12, 8)).requests == 2
    assert rollups.purge_usage(now=NOW) == 1


def test_it_reads_the_retention_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    UsageRecord.objects.bulk_create([_rec(NOW - timedelta(days=40)), _rec(NOW - timedelta(days=20))])
    monkeypatch.setenv("LLMPROXY_USAGE_RETENTION_DAYS", "0")
    assert rollups.retention_cutoff(NOW) is None
    assert rollups.purge_usage(now=NOW) == 0
    monkeypatch.setenv("LLMPROXY_USAGE_RETENTION_DAYS", "30")
    assert rollups.purge_usage(now=NOW) == 1
    assert tasks.purge_usage(retention_days=10) == 1  # the task's argument wins
    assert UsageRecord.objects.count() == 0
    assert UsageDaily.objects.count() == 2


# -- budget periods -------------------------------------------------------------------------------


def test_it_advances_budget_periods_that_ended(django_capture_on_commit_callbacks: Any) -> None:
    owner = factories.user()

    def key(period: str, started: datetime | None) -> ApiKey:
        k, _ = factories.api_key(owner, budget_usd=Decimal(10), budget_period=period)
        ApiKey.objects.filter(pk=k.pk).update(period_started_at=started)
        return k

    daily = key("daily", datetime(2026, 3, 17, 0, tzinfo=UTC))
    daily_reset_today = key("daily", datetime(2026, 3, 18, 9, tzinfo=UTC))  # reset by hand this morning
    weekly = key("weekly", datetime(2026, 3, 9, tzinfo=UTC))
    weekly_current = key("weekly", datetime(2026, 3, 16, tzinfo=UTC))
    monthly = key("monthly", datetime(2026, 1, 1, tzinfo=UTC))  # unattended for two months
    fresh = key("monthly", None)
    never = key("none", datetime(2020, 1, 1, tzinfo=UTC))
    resets: list[int] = []
    budget_periods.BUDGET_RESET_HOOKS.append(resets.append)
    try:
        before = ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0
        with django_capture_on_commit_callbacks(execute=True):
            moved = budget_periods.advance_budget_periods(now=NOW)
        assert sorted(moved) == sorted([daily.pk, weekly.pk, monthly.pk, fresh.pk])
        assert sorted(resets) == sorted([daily.pk, weekly.pk, monthly.pk])  # a first start is not a reset
        assert ConfigVersion.objects.get(pk=1).version > before
        assert budget_periods.advance_budget_periods(now=NOW) == []
        moved = budget_periods.advance_budget_periods(now=NOW + timedelta(hours=8, minutes=30))
        assert sorted(moved) == sorted([daily.pk, daily_reset_today.pk])
    finally:
        budget_periods.BUDGET_RESET_HOOKS.remove(resets.append)
    starts = dict(ApiKey.objects.values_list("id", "period_started_at"))
    assert starts[weekly.pk] == starts[weekly_current.pk] == datetime(2026, 3, 16, tzinfo=UTC)
    assert starts[monthly.pk] == starts[fresh.pk] == datetime(2026, 3, 1, tzinfo=UTC)
    assert starts[daily.pk] == datetime(2026, 3, 19, tzinfo=UTC)
    assert starts[never.pk] == datetime(2020, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("period", "end"), [("daily", datetime(2026, 3, 19, tzinfo=UTC)),
                                             ("weekly", datetime(2026, 3, 23, tzinfo=UTC)),
                                             ("monthly", datetime(2026, 4, 1, tzinfo=UTC))])  # fmt: skip
def test_it_starts_periods_where_the_limiter_expects_them_to_end(period: str, end: datetime) -> None:
    start = periods.period_start(period, NOW)
    assert bounds(period, start.timestamp(), UTC)[1] == end.timestamp()
    assert periods.period_start(period, end) == end  # the next period starts exactly there


# -- tasks -----------------------------------------------------------------------------------------


def test_it_skips_a_duplicate_run_while_the_first_one_holds_the_claim() -> None:
    UsageRecord.objects.bulk_create([_rec(NOW)])
    assert tasks.rollup_usage() is not None
    assert tasks.rollup_usage() is None  # a second beat's copy of the same tick
    assert UsageDaily.objects.count() == 1
    locks.release("rollup_usage")
    assert tasks.rollup_usage() is not None


def test_it_releases_the_claim_when_a_run_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(budget_periods, "advance_budget_periods", boom)
    with pytest.raises(RuntimeError):
        tasks.advance_budget_periods()
    monkeypatch.undo()
    assert tasks.advance_budget_periods() == []  # the retry runs


def test_it_runs_the_health_checks_of_the_routing_side(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(checks, "run_health_checks", lambda: calls.append(1) or {"checked": 3})
    assert tasks.health_checks() == {"checked": 3}
    assert tasks.health_checks() is None
    assert calls == [1]


def test_it_tells_serve_not_to_start_jobs_with_an_external_broker(settings: Any) -> None:
    import io

    from proxy.management.commands.serve import Command

    settings.CELERY_EMBEDDED_BROKER = False
    out = io.StringIO()
    assert Command(stdout=out)._start_jobs() is None
    assert "celery -A llmproxy_site worker" in out.getvalue()


def test_limiter_reset_job_api_and_spend_agree_on_periods_in_llmproxy_time_zone(settings: Any) -> None:
    """One calendar in ``LLMPROXY_TIME_ZONE`` (Tokyo, UTC+9, here): the limiter's period, the
    reset job's new start, ``budget_resets_at`` and the live counter's name all match."""
    from django.test import Client

    from llmproxy.limits import Limiter
    from llmproxy.state import MemoryStateStore
    from proxy.serving.site_config import limit_settings, read_site_config
    from proxy.serving.spend import counter_key

    settings.LLMPROXY = {**settings.LLMPROXY, "TIME_ZONE": "Asia/Tokyo"}
    now = datetime(2026, 6, 30, 20, tzinfo=UTC)  # already July 1st, 05:00, in Tokyo
    july, august = datetime(2026, 6, 30, 15, tzinfo=UTC), datetime(2026, 7, 31, 15, tzinfo=UTC)
    limiter = Limiter(MemoryStateStore(), settings=limit_settings(read_site_config()))
    assert limiter.period_start("monthly", now.timestamp()) == (july.timestamp(), august.timestamp())
    assert periods.period_resets_at("monthly", now) == august
    owner = factories.user(staff=True)
    key, _ = factories.api_key(owner, budget_usd=Decimal(5), budget_period="monthly")
    ApiKey.objects.filter(pk=key.pk).update(period_started_at=datetime(2026, 5, 31, 15, tzinfo=UTC))
    assert budget_periods.advance_budget_periods(now=now) == [key.pk]
    key.refresh_from_db()
    assert key.period_started_at == july
    # At the real clock: the API, the spend counter and the limiter name the same period.
    client = Client()
    client.force_login(owner)
    shown = client.get(f"/api/v1/keys/{key.pk}").json()
    start, end = limiter.period_start("monthly", datetime.now(UTC).timestamp())
    assert end is not None and datetime.fromisoformat(shown["budget_resets_at"]).timestamp() == end
    ApiKey.objects.filter(pk=key.pk).update(period_started_at=None)
    key.refresh_from_db()
    assert counter_key(key) == limiter.spend_key(f"k:{key.pk}", "monthly") == f"k:{key.pk}:{int(start)}"
