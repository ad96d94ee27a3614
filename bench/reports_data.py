"""The report bench's data: millions of usage rows generated inside PostgreSQL, then the rollups.

Rows are made by one ``INSERT ... SELECT FROM generate_series`` per million (no Python per
row), with the usage table's secondary indexes dropped first and rebuilt after, which is
several times faster than maintaining them row by row. Only ever into a database whose
name ends in ``_bench`` (``bench.reports`` checks before Django starts).

The rollups are the job's own (``proxy.jobs.rollups.rollup_usage`` without a watermark):
every day, and the hours of the last two days for the 24 h dashboard.

Shape: ``days`` days up to now, evenly spread (so "today" holds its share), 50 users with
4 keys each, 8 models over 4 providers, 3 % failures, streamed requests with a TTFB.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

USERS = 50
KEYS_PER_USER = 4
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "gemini-pro", "gemini-flash", "llama-70b",
          "qwen-32b")  # fmt: skip
PROVIDERS = ("openai", "anthropic", "google", "together")
CHUNK = 1_000_000


def _log(msg: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {msg}", flush=True)


def accounts() -> list[tuple[int, int]]:
    """The bench's users and keys (created once); returns (key id, user id) pairs."""
    from accounts.models import ApiKey, User

    users = list(User.objects.filter(username__startswith="bench-user-").order_by("pk"))
    if len(users) < USERS:
        User.objects.bulk_create([User(username=f"bench-user-{i:02d}") for i in range(len(users), USERS)])
        users = list(User.objects.filter(username__startswith="bench-user-").order_by("pk"))
    if ApiKey.objects.filter(name__startswith="bench-key-").count() < USERS * KEYS_PER_USER:
        ApiKey.objects.filter(name__startswith="bench-key-").delete()
        keys = []
        for u in users:
            for j in range(KEYS_PER_USER):
                k = ApiKey(user=u, name=f"bench-key-{u.pk}-{j}", prefix=f"llp_b{u.pk:03d}{j}")
                k.key_hash = f"bench-{u.pk}-{j}".ljust(64, "0")
                keys.append(k)
        ApiKey.objects.bulk_create(keys)
    return list(ApiKey.objects.filter(name__startswith="bench-key-").order_by("pk").values_list("pk", "user_id"))


def _rollup_tables() -> list[Any]:
    from proxy.reports import grains

    return [t for g in (grains.DAY, grains.HOUR) for t in (g.totals, g.latency, g.errors, g.credentials, g.mark)]


def generate(rows: int, days: int) -> None:
    """Replace the usage rows with ``rows`` generated ones over the last ``days`` days."""
    from django.db import connection, transaction

    pairs = accounts()
    keys_sql = ",".join(f"({i},{k},{u})" for i, (k, u) in enumerate(pairs))
    models_sql = ",".join(f"({i},'{m}','{PROVIDERS[i % len(PROVIDERS)]}')" for i, m in enumerate(MODELS))
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    with transaction.atomic(), connection.cursor() as cur:  # a failure leaves the indexes as they were
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'proxy_usagerecord' "
                    "AND indexname <> 'proxy_usagerecord_pkey'")  # fmt: skip
        indexes = cur.fetchall()
        cur.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'proxy_usagerecord'::regclass "
                    "AND contype = 'u'")  # fmt: skip
        uniques = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT pg_get_constraintdef(oid), conname FROM pg_constraint "
                    "WHERE conrelid = 'proxy_usagerecord'::regclass AND contype = 'u'")  # fmt: skip
        unique_defs = cur.fetchall()
        _log(f"truncating; dropping {len(indexes)} indexes while loading")
        cur.execute("TRUNCATE proxy_usagerecord RESTART IDENTITY")
        # Every rollup and mark too: a mark left from an older run would claim a day the new rows lack.
        cur.execute("TRUNCATE " + ", ".join(m._meta.db_table for m in _rollup_tables()) + " RESTART IDENTITY")
        for name in uniques:
            cur.execute(f'ALTER TABLE proxy_usagerecord DROP CONSTRAINT "{name}"')
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'proxy_usagerecord' "
                    "AND indexname <> 'proxy_usagerecord_pkey'")  # fmt: skip
        for (name,) in cur.fetchall():
            cur.execute(f'DROP INDEX "{name}"')
        done = 0
        while done < rows:
            n = min(CHUNK, rows - done)
            t = time.perf_counter()
            cur.execute(_INSERT.format(keys=keys_sql, models=models_sql, nkeys=len(pairs), nmodels=len(MODELS)),
                        {"lo": done + 1, "hi": done + n, "rows": rows, "start": start, "span": span})  # fmt: skip
            done += n
            _log(f"{done:,} rows ({time.perf_counter() - t:.1f} s for this million)")
        for definition, name in unique_defs:
            t = time.perf_counter()
            cur.execute(f'ALTER TABLE proxy_usagerecord ADD CONSTRAINT "{name}" {definition}')
            _log(f"constraint {name} in {time.perf_counter() - t:.1f} s")
        for name, definition in indexes:
            if name in uniques:
                continue
            t = time.perf_counter()
            cur.execute(definition)
            _log(f"index {name} in {time.perf_counter() - t:.1f} s")
        cur.execute("SELECT setval(pg_get_serial_sequence('proxy_usagerecord', 'id'), %s)", [rows])
        cur.execute("ANALYZE proxy_usagerecord")
    _log("generated")


#: Row i: evenly spaced in time (oldest first, so ids grow with created_at as in production),
#: its key (and so user) and model picked by cheap integer hashes of i.
_INSERT = """
WITH k(ix, key_id, user_id) AS (VALUES {keys}), m(ix, model, provider) AS (VALUES {models}),
s AS (
  SELECT i, (i * 2654435761) %% 4294967296 AS h, (i * 7919 + i / 100) %% 100 AS e FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS i
)
INSERT INTO proxy_usagerecord (request_id, created_at, user_id, key_id, key_prefix, ingress, model, upstream_model,
  provider, credential, stream, status_code, error_type, prompt_tokens, completion_tokens, cached_tokens,
  cache_write_tokens, reasoning_tokens, cost_usd, latency_ms, ttfb_ms, attempts, error_detail, overrides,
  tokens_estimated)
SELECT 'bench-' || s.i, %(start)s::timestamptz + make_interval(secs => %(span)s * s.i / %(rows)s),
  k.user_id, k.key_id, 'llp_b' || k.key_id, 'openai_chat', m.model, m.model, m.provider, 'default',
  (s.h %% 3 = 0), CASE WHEN s.e < 2 THEN 429 WHEN s.e = 2 THEN 502 ELSE 200 END,
  CASE WHEN s.e < 2 THEN 'rate_limit' WHEN s.e = 2 THEN 'upstream_error' ELSE '' END,
  100 + s.h %% 4000, 20 + (s.h / 7) %% 800, (s.h / 11) %% 500, 0, 0,
  ((100 + s.h %% 4000) * 0.0000025 + (20 + (s.h / 7) %% 800) * 0.00001)::numeric(14, 8),
  150 + ((s.h / 13) %% 1000) * ((s.h / 17) %% 1000) / 60,
  CASE WHEN s.h %% 3 = 0 THEN 80 + (s.h / 19) %% 900 END, 1, '', '{{}}'::jsonb, false
FROM s JOIN k ON k.ix = (s.h / 3) %% {nkeys} JOIN m ON m.ix = (s.h / 5) %% {nmodels}
"""


def rollups() -> int:
    """Roll up every whole past day and the last two days' hours (what the rollup job does), returning the days done."""
    from django.core.cache import cache
    from django.utils import timezone

    from proxy.jobs.rollups import WATERMARK_KEY, rollup_usage
    from proxy.models import UsageRollupHour

    cache.delete(WATERMARK_KEY)  # every day, not only those touched since the last run
    t = time.perf_counter()
    today = timezone.now().astimezone(UTC).date()
    done = [d for d in rollup_usage() if d < today]
    _log(f"rolled up {len(done)} days and {UsageRollupHour.objects.count()} hours in {time.perf_counter() - t:.1f} s")
    return len(done)
