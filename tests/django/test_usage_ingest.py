"""The usage ingester: journal -> UsageRecord rows, exactly once, watermark after commit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError

from llmproxy.journal import FULL_FLAG, JournalReader, JournalWriter
from llmproxy.model import Usage
from llmproxy.usage import UsageEvent
from proxy.jobs import usage_ingest
from proxy.jobs.usage_ingest import Ingester
from proxy.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


def event(rid: str, **kw: Any) -> UsageEvent:
    fields: dict[str, Any] = {"request_id": rid, "created_at": 1_700_000_000.25, "ingress": "anthropic",
                              "model": "claude-x", "provider": "up", "credential": "key-1", "status_code": 200,
                              "usage": Usage(input_tokens=12, output_tokens=3, cached_tokens=2, cache_write_tokens=5),
                              "cost_usd": 0.000123,
                              "latency_ms": 40, "ttfb_ms": 9, "attempts": 1, "stream": True}  # fmt: skip
    fields.update(kw)
    return UsageEvent(**fields)


def journal(tmp_path: Path, events: list[UsageEvent]) -> Path:
    directory = tmp_path / "usage-journal"
    w = JournalWriter(directory)
    for ev in events:
        w.append(ev)
    w.close()
    return directory


def test_it_writes_every_field_of_a_record(tmp_path: Path) -> None:
    directory = journal(tmp_path, [event("r1", model="m" * 250, error_type="", user_id=None)])
    assert Ingester(directory, quota_bytes=2**30).drain() == 1
    row = UsageRecord.objects.get(request_id="r1")
    assert (row.ingress, row.provider, row.credential, row.status_code, row.stream) == ("anthropic", "up", "key-1",
                                                                                       200, True)  # fmt: skip
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens, row.cache_write_tokens) == (12, 3, 2, 5)
    assert row.cost_usd == Decimal("0.00012300")
    assert (row.latency_ms, row.ttfb_ms, row.attempts) == (40, 9, 1)
    assert row.created_at.timestamp() == 1_700_000_000.25
    assert row.model == "m" * 200  # cut to the column, never refused
    assert list(directory.glob("*.jnl")) == []  # sealed and written: deleted
    assert row.tokens_estimated is False


def test_it_marks_the_gateways_own_token_counts(tmp_path: Path) -> None:
    """``Usage.estimated`` (the upstream reported no count) lands as ``tokens_estimated``."""
    counted = Usage(input_tokens=40, output_tokens=7, estimated=True)
    directory = journal(tmp_path, [event("est", usage=counted), event("real")])
    assert Ingester(directory, quota_bytes=2**30).drain() == 2
    est, real = UsageRecord.objects.get(request_id="est"), UsageRecord.objects.get(request_id="real")
    assert (est.tokens_estimated, est.prompt_tokens, est.completion_tokens) == (True, 40, 7)
    assert real.tokens_estimated is False


def test_it_inserts_nothing_twice_when_replayed_after_a_crash_before_the_watermark(tmp_path: Path) -> None:
    directory = journal(tmp_path, [event(f"r{i}") for i in range(50)])
    crashed = Ingester(directory, quota_bytes=2**30)
    batch = crashed.reader.read()
    usage_ingest.insert(batch.records)  # committed to the database, then the process died: no watermark
    assert UsageRecord.objects.count() == 50
    assert Ingester(directory, quota_bytes=2**30).drain() == 50  # the restart reads the batch again
    assert UsageRecord.objects.count() == 50
    assert sorted(UsageRecord.objects.values_list("request_id", flat=True)) == sorted(f"r{i}" for i in range(50))


def test_it_keeps_one_row_for_a_request_id_journaled_twice(tmp_path: Path) -> None:
    directory = journal(tmp_path, [event("same"), event("same", status_code=499), event("other")])
    assert Ingester(directory, quota_bytes=2**30).drain() == 3
    assert UsageRecord.objects.filter(request_id="same").count() == 1
    assert UsageRecord.objects.filter(request_id="same").get().status_code == 200  # the first one wins


def test_it_keeps_the_watermark_when_the_insert_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = journal(tmp_path, [event(f"r{i}") for i in range(5)])
    ingester = Ingester(directory, quota_bytes=2**30)

    def down(records: list[dict[str, Any]]) -> None:
        raise DatabaseError("connection refused")

    monkeypatch.setattr(usage_ingest, "insert", down)
    with pytest.raises(DatabaseError):
        ingester.run_once()
    assert JournalReader(directory).positions == {} and len(list(directory.glob("*.jnl"))) == 1
    monkeypatch.undo()
    assert ingester.run_once() == 5
    assert UsageRecord.objects.count() == 5


def test_it_flags_a_backlog_over_the_quota_and_clears_it_once_drained(tmp_path: Path) -> None:
    directory = journal(tmp_path, [event(f"r{i}") for i in range(20)])
    ingester = Ingester(directory, quota_bytes=100)
    ingester.check_quota()
    assert (directory / FULL_FLAG).exists()
    ingester.drain()
    ingester.check_quota()
    assert not (directory / FULL_FLAG).exists()


def test_it_lets_one_ingester_hold_a_journal(tmp_path: Path) -> None:
    directory = journal(tmp_path, [])
    first, second = Ingester(directory, quota_bytes=2**30), Ingester(directory, quota_bytes=2**30)
    assert first.acquire(wait=False)
    assert not second.acquire(wait=False)
    first.release()
    assert second.acquire(wait=False)
    second.release()
