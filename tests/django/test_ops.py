"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from llmproxy.journal import Batch, JournalReader
from llmproxy.model import Usage
from llmproxy.usage import UsageEvent
from proxy.serving import metrics

pytestmark = pytest.mark.django_db


@pytest.fixture
def registry(settings: Any, tmp_path: Path) -> Iterator[metrics.Metrics]:
    """Counts as the usage ingester keeps them: committed with the journal's watermark."""
    journal = tmp_path / "usage-journal"
    settings.LLMPROXY = {**settings.LLMPROXY, "USAGE_JOURNAL_DIR": str(journal)}
    yield metrics.Metrics()


def publish(counts: metrics.Metrics) -> None:
    """Commit the counts with the journal's watermark, as the ingester does after a batch."""
    from proxy.serving.usage_journal import journal_dir

    JournalReader(journal_dir()).commit(Batch(), counts.state())


def event(**kw: Any) -> UsageEvent:
    fields: dict[str, Any] = {"request_id": "r", "created_at": 0.0, "ingress": "openai_chat", "model": "gpt-test",
                              "provider": "up", "credential": "key-1", "status_code": 200, "latency_ms": 300,
                              "attempts": 1}  # fmt: skip
    fields.update(kw)
    return UsageEvent(**fields)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in an exposition, whatever the label order."""
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if found == labels:
            return float(m.group(3))
    raise AssertionError(f"no sample {name}{labels}")


def test_it_answers_healthz(client: Client) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


def test_it_is_ready_on_the_embedded_profile(client: Client, settings: Any, tmp_path: Path) -> None:
    folder = tmp_path / "broker"
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    resp = client.get("/readyz")
    assert resp.status_code == 200, resp.content
    assert resp.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}}
    assert folder.is_dir()


def test_it_reports_the_part_that_is_not_ready(client: Client, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    resp = client.get("/readyz")
    assert resp.status_code == 503
    checks = resp.json()["checks"]
    assert checks["database"] == "ok" and checks["cache"] == "ok"
    assert checks["broker"].startswith("error:")


def test_it_exposes_metrics_after_usage_events(client: Client, registry: metrics.Metrics) -> None:
    registry.observe(event(usage=Usage(input_tokens=100, output_tokens=20, cached_tokens=40), cost_usd=0.002,
                           latency_ms=300, ttfb_ms=80, stream=True))  # fmt: skip
    registry.observe(event(usage=Usage(input_tokens=50, output_tokens=5), cost_usd=0.001, latency_ms=1500))
    registry.observe(event(status_code=503, error_type="upstream_timeout", latency_ms=30000, attempts=3))
    registry.observe(event(model='we"ird\nname', provider="odd", status_code=400, error_type="upstream_error"))
    registry.observe(event(model="made-up-by-client", provider="", status_code=404, error_type="model_not_found"))
    publish(registry)
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/plain; version=0.0.4")
    text = resp.content.decode()
    assert sample(text, "llmproxy_requests_total", model="gpt-test", provider="up", status="200") == 2
    assert sample(text, "llmproxy_requests_total", model="gpt-test", provider="up", status="503") == 1
    assert sample(text, "llmproxy_requests_total", model='we\\"ird\\nname', provider="odd", status="400") == 1
    assert sample(text, "llmproxy_requests_total", model="", provider="", status="404") == 1  # unrouted: no name
    assert "made-up-by-client" not in text
    assert sample(text, "llmproxy_tokens_total", model="gpt-test", provider="up", kind="prompt") == 150
    assert sample(text, "llmproxy_tokens_total", model="gpt-test", provider="up", kind="cached") == 40
    assert sample(text, "llmproxy_cost_usd_total", model="gpt-test", provider="up") == pytest.approx(0.003)
    hist = "llmproxy_request_duration_seconds"
    assert sample(text, hist + "_bucket", model="gpt-test", provider="up", le="0.5") == 1
    assert sample(text, hist + "_bucket", model="gpt-test", provider="up", le="2.5") == 2
    assert sample(text, hist + "_bucket", model="gpt-test", provider="up", le="+Inf") == 3
    assert sample(text, hist + "_count", model="gpt-test", provider="up") == 3
    assert sample(text, hist + "_sum", model="gpt-test", provider="up") == pytest.approx(31.8)
    assert sample(text, "llmproxy_upstream_errors_total", provider="up", error_type="upstream_timeout") == 1
    assert sample(text, "llmproxy_retries_total", provider="up") == 2
    assert sample(text, "llmproxy_config_version") >= 0
    assert sample(text, "llmproxy_usage_journal_backlog_bytes") == 0
    assert "# TYPE llmproxy_request_duration_seconds histogram" in text
    assert not any(line.startswith('llmproxy_upstream_errors_total{provider=""') for line in text.splitlines())


@pytest.mark.django_db(transaction=True)
def test_it_serves_ops_endpoints_and_the_api_through_the_asgi_app(live: Any) -> None:
    import httpx

    from tests import factories

    _, raw = factories.api_key(factories.user("root", staff=True), admin=True)
    with httpx.Client(base_url=live.url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}
        assert "llmproxy_config_version" in http.get("/metrics").text
        created = http.post("/api/v1/providers", json={"name": "live", "type": "openai"},
                            headers={"Authorization": f"Bearer {raw}"})  # fmt: skip
        assert created.status_code == 201, created.text
        assert http.post("/api/v1/providers", json={"name": "x", "type": "openai"}).status_code == 401


def test_it_counts_each_journaled_request_once_for_all_processes(client: Client, registry: metrics.Metrics) -> None:
    from llmproxy.journal import JournalWriter
    from proxy.jobs.usage_ingest import Ingester
    from proxy.serving.usage_journal import journal_dir

    for worker in range(2):  # two serving processes' writers, one ingester
        w = JournalWriter(journal_dir())
        for i in range(3):
            w.append(event(request_id=f"w{worker}-{i}", usage=Usage(input_tokens=10)))
        w.close()
    assert sample(client.get("/metrics").content.decode(), "llmproxy_usage_journal_backlog_bytes") > 0
    assert Ingester(journal_dir(), quota_bytes=2**30).drain() == 6
    text = client.get("/metrics").content.decode()
    assert sample(text, "llmproxy_requests_total", model="gpt-test", provider="up", status="200") == 6
    assert sample(text, "llmproxy_tokens_total", model="gpt-test", provider="up", kind="prompt") == 60
    assert sample(text, "llmproxy_usage_journal_backlog_bytes") == 0
    assert Ingester(journal_dir(), quota_bytes=2**30).drain() == 0  # a restarted ingester counts nothing twice
    assert sample(client.get("/metrics").content.decode(), "llmproxy_requests_total", model="gpt-test",
                  provider="up", status="200") == 6  # fmt: skip


def test_it_counts_limits_store_errors(registry: metrics.Metrics) -> None:
    text = registry.render(store_errors={("budget", "refused"): 2, ("rate_limit", "admitted"): 5})
    assert sample(text, "llmproxy_limits_store_errors_total", kind="budget", outcome="refused") == 2
    assert sample(text, "llmproxy_limits_store_errors_total", kind="rate_limit", outcome="admitted") == 5
    assert "# TYPE llmproxy_limits_store_errors_total counter" in text


CHILD = """
import sys
from pathlib import Path
from proxy.serving.process_counters import CounterFile
counts = {"llmproxy_limits_store_errors_total": {("budget", "refused"): 2, ("renew", "failed"): 1}}
assert CounterFile(Path(sys.argv[1]), lambda: counts).flush()
print("written", flush=True)
sys.stdin.read()  # until the test lets it exit
"""


def test_it_sums_limits_store_errors_over_the_serving_processes_and_keeps_the_exited_ones(
    client: Client, registry: metrics.Metrics, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Another serving process counted too: /metrics shows the sum; after it exits, the total stays."""
    import subprocess
    import sys
    from collections import Counter

    from django.conf import settings

    from proxy.serving.process_counters import TOTALS, counters_dir
    from proxy.serving.process_engine import get_engine

    monkeypatch.setattr(settings, "VAR_DIR", tmp_path / "var")
    limiter = get_engine().gateway.limiter
    monkeypatch.setattr(limiter, "store_errors", Counter({("budget", "refused"): 3}))
    directory = counters_dir()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(directory)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"

        def scrape() -> tuple[float, float]:
            text = client.get("/metrics").content.decode()
            return (sample(text, "llmproxy_limits_store_errors_total", kind="budget", outcome="refused"),
                    sample(text, "llmproxy_limits_store_errors_total", kind="renew", outcome="failed"))  # fmt: skip

        assert scrape() == (5, 1)  # this process's 3 (live) + the child's 2 (its file)
        assert len(list(directory.glob(f"*-{child.pid}-*.json"))) == 1  # the child's file
    finally:
        child.communicate("", timeout=30)
    assert child.returncode == 0
    assert scrape() == (5, 1)  # exited: folded into the totals, not dropped
    assert not list(directory.glob(f"*-{child.pid}-*")) and (directory / TOTALS).exists()
    assert scrape() == (5, 1)  # and counted once
    limiter.store_errors[("budget", "refused")] += 1
    assert scrape() == (6, 1)


def test_it_writes_a_processes_counters_only_when_they_changed(tmp_path: Path) -> None:
    from proxy.serving.process_counters import CounterFile, read_node

    family = "llmproxy_limits_store_errors_total"
    counts: dict[tuple[str, ...], int] = {}
    own = CounterFile(tmp_path, lambda: {family: counts})
    assert own.flush() is False and not list(tmp_path.iterdir())  # nothing counted, nothing written
    counts[("settle", "lost")] = 1
    assert own.flush() is True and own.flush() is False
    other = CounterFile(tmp_path, lambda: {family: {("settle", "lost"): 4}})
    assert other.flush() is True
    assert read_node(tmp_path)[family] == {("settle", "lost"): 5}
    counts[("settle", "lost")] = 2  # not yet flushed: the scraping process reads its own live
    assert read_node(tmp_path, own)[family] == {("settle", "lost"): 6}


def test_a_counters_write_that_fails_is_one_logged_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """At exit too (``atexit`` runs ``flush_logged``): a var dir that cannot be written is a
    warning naming it, never a traceback on the console."""
    from proxy.serving.process_counters import CounterFile

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the folder should be")
    counter = CounterFile(blocked, lambda: {"llmproxy_limits_store_errors_total": {("budget", "refused"): 1}})
    with caplog.at_level(logging.WARNING, logger="llmproxy.metrics"):
        counter.flush_logged()
    [line] = [r for r in caplog.records if r.name == "llmproxy.metrics"]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert str(blocked) in line.getMessage()
