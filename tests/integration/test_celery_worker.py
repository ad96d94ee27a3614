"""Tasks on a real Celery worker process: the filesystem broker, or Redis when REDIS_URL is set."""

from __future__ import annotations

import sys
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from llmproxy_site.celery import app
from proxy.jobs import locks
from proxy.jobs.rollups import SETTLE, WATERMARK_KEY
from proxy.models import UsageDaily, UsageRecord

from .conftest import Child, child_env, until

pytestmark = pytest.mark.django_db(transaction=True)


def seed_usage(now: datetime) -> None:
    rows = []
    for i in range(40):
        at = now - timedelta(hours=7 * i)
        rows.append(UsageRecord(
            request_id=f"w-{i}", created_at=at, user_id=(i % 3) or None, key_id=(i % 3) or None,
            ingress="openai_chat", model=("gpt-test", "claude-x")[i % 2], provider=("up", "anthropic")[i % 2],
            status_code=(200, 200, 429, 500)[i % 4], prompt_tokens=10 * i, completion_tokens=i, cached_tokens=i % 5,
            reasoning_tokens=i % 7, cost_usd=None if i % 5 == 0 else Decimal(i) / Decimal(3000),
        ))  # fmt: skip
    UsageRecord.objects.bulk_create(rows)


def sums_of_raw_rows() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, Decimal(0)])
    for r in UsageRecord.objects.all():
        row = out[(r.created_at.astimezone(UTC).date(), r.user_id or 0, r.key_id or 0, r.model, r.provider)]
        for i, v in enumerate((1, int(r.status_code >= 400), r.prompt_tokens, r.completion_tokens, r.cached_tokens,
                               r.reasoning_tokens, (r.cost_usd or Decimal(0)).quantize(Decimal("1e-8")))):  # fmt: skip
            row[i] += v
    return {k: tuple(v) for k, v in out.items()}


def rollups() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {
        (d.day, d.user_id, d.key_id, d.model, d.provider): (
            d.requests, d.errors, d.prompt_tokens, d.completion_tokens, d.cached_tokens, d.reasoning_tokens,
            d.cost_usd,
        )
        for d in UsageDaily.objects.all()
    }  # fmt: skip


def test_it_rolls_usage_up_on_a_real_worker() -> None:
    seed_usage(timezone.now() - SETTLE - timedelta(minutes=1))  # settled rows: the rollups take them all
    expected = sums_of_raw_rows()
    assert len({k[0] for k in expected}) >= 10  # many days, several groups each
    cache.delete_many([WATERMARK_KEY, locks.LOCK_PREFIX + "rollup_usage"])  # shared with the worker on Redis
    queue = f"llmproxy-test-{uuid.uuid4().hex[:12]}"  # nobody else's worker takes our message
    worker = Child([sys.executable, "-m", "celery", "-A", "llmproxy_site", "worker", "--pool", "solo", "-Q", queue,
                    "--hostname", f"{queue}@%h", "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
                    "--without-heartbeat"], child_env()).start()  # fmt: skip
    try:
        app.send_task("proxy.tasks.rollup_usage", queue=queue)
        try:
            until(lambda: UsageDaily.objects.count() == len(expected), 45, every=0.2, what="rollups by the worker")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.output()}") from None
        assert rollups() == expected
        assert worker.alive(), worker.output()
    finally:
        worker.stop()
    assert "Traceback" not in worker.output()


def test_a_real_workers_log_lines_are_scrubbed(upstream: Any) -> None:
    """An upstream that quotes its key, as real ones do: the worker's log line names the failure, not the key."""
    from proxy.models import HealthState, HealthStatus
    from tests import factories
    from tests.fakes import openai as up

    secret = "sk-proj-" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    upstream.reset()
    upstream.default("*", up.error(401, f"Incorrect API key provided: {secret}. You can find your key at ..."))
    factories.provider("echoing", upstream.url + "/v1", api_key=secret)
    cache.delete_many([locks.LOCK_PREFIX + "health_checks"])
    queue = f"llmproxy-test-{uuid.uuid4().hex[:12]}"
    worker = Child([sys.executable, "-m", "celery", "-A", "llmproxy_site", "worker", "--pool", "solo", "-Q", queue,
                    "--hostname", f"{queue}@%h", "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
                    "--without-heartbeat"], child_env()).start()  # fmt: skip
    try:
        app.send_task("proxy.tasks.health_checks", queue=queue)
        until(lambda: HealthStatus.objects.filter(state=HealthState.UNHEALTHY).exists(), 45, every=0.2,
              what="the health check on the worker")  # fmt: skip
        until(lambda: "is now unhealthy" in worker.output(), 10, what="the worker's warning")
        # Celery's own lines too: an unknown task's whole message (the key among its arguments) is logged.
        app.send_task("proxy.tasks.no_such_task", args=[f"key={secret}"], queue=queue)
        until(lambda: "no_such_task" in worker.output(), 20, what="celery's unregistered-task error")
        out = worker.output()
    finally:
        worker.stop()
        upstream.reset()
    fragments = {secret[i : i + 8] for i in range(len(secret) - 7)}
    assert not [f for f in fragments if f in out], out
