"""The usage ledger end to end: real ``serve`` processes killed with SIGKILL under load.

Every request the client saw complete (the whole body, or the stream to its end) must
have exactly one usage record after a restart; requests cut
by the kill may or may not have one, but never two (INTERFACE.md section 9).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.db.models import Count

from proxy.models import UsageRecord
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

from .conftest import Child, Serve, child_env, children_of, free_port, is_running, until

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Load:
    """Client threads sending a mix of plain and streamed requests, each with its own id."""

    url: str
    key: str
    completed: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, n: int = 6) -> Load:
        for i in range(n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _run(self, worker: int) -> None:
        seq = 0
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                seq += 1
                rid = f"w{worker}-{seq}-{os.urandom(4).hex()}"
                stream = seq % 2 == 0
                body = {"model": "gpt-test", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
                headers = {"Authorization": f"Bearer {self.key}", "x-request-id": rid}
                try:
                    with client.stream("POST", self.url + "/v1/chat/completions", json=body, headers=headers) as r:
                        data = b"".join(r.iter_bytes())
                    complete = data.rstrip().endswith(b"[DONE]") if stream else data.endswith(b"}")
                    if r.status_code == 200 and complete:
                        self.completed.add(rid)
                except httpx.HTTPError:
                    time.sleep(0.05)  # the server is down: wait for the restart

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out = [pid]
    for child in children_of(pid):
        out += tree(child)
    return out


def kill_all(server: Serve) -> list[int]:
    pids = tree(server.pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert server.proc is not None
    server.proc.wait(10)
    until(lambda: not any(is_running(p) for p in pids), 10, what="every killed process gone")
    return pids


def recorded(ids: set[str]) -> dict[str, int]:
    rows = UsageRecord.objects.filter(request_id__in=ids).values("request_id").annotate(n=Count("id"))
    return {r["request_id"]: r["n"] for r in rows}


@pytest.fixture
def key(fake: FakeUpstream) -> str:
    fake.default("/v1/chat/completions", lambda req: up.stream(["a", "b", "c"]) if req.body.get("stream")
                 else up.completion("ok"))  # fmt: skip
    factories.provider("up", fake.url + "/v1", models=[{"name": "gpt-test", "upstream": "up-a"}])
    _, raw = factories.api_key(factories.user())
    return raw


@pytest.fixture
def var_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "node"


@pytest.fixture
def serve() -> Iterator[Callable[..., Serve]]:
    """Start ``serve --no-jobs`` on a var dir; whatever is still running is stopped after the test."""
    started: list[Serve] = []

    def start(var_dir: Path, *args: str) -> Serve:
        s = Serve(child_env(var_dir=var_dir), "--no-jobs", *args)
        started.append(s)
        s.start()
        s.wait_ready()
        return s

    yield start
    for s in started:
        s.stop(signal.SIGKILL if s.alive() else signal.SIGTERM)


def test_it_keeps_every_completed_request_across_kill_9_of_every_process(
    key: str, var_dir: Path, serve: Callable[..., Serve]
) -> None:
    # Several workers need the shared store (serve refuses them without Redis): two on
    # CI's Redis pass, one on the embedded pass. Either way every process is killed.
    workers = 2 if os.environ.get("REDIS_URL") else 1
    server = serve(var_dir, "--workers", str(workers))
    load = Load(server.url, key).start()
    try:
        until(lambda: len(load.completed) >= 80, 60, what="requests completed under load")
        pids = kill_all(server)
        assert len(pids) >= (4 if workers == 2 else 2)  # serve, its workers, the ingester
        before = set(load.completed)
        server = serve(var_dir)
        load.url = server.url
        until(lambda: len(load.completed) >= len(before) + 20, 30, what="requests after the restart")
    finally:
        load.finish()
    # The contract's 5 s is measured in bench/ (no timing assertions here): this waits generously.
    until(lambda: len(recorded(load.completed)) == len(load.completed), 30, what="every completed request recorded")
    counts = recorded(load.completed)
    assert set(counts) == load.completed
    assert set(counts.values()) == {1}
    assert not UsageRecord.objects.values("request_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert UsageRecord.objects.filter(request_id__in=before, stream=True).exists()
    assert UsageRecord.objects.filter(request_id__in=before, stream=False).exists()


def test_it_writes_every_record_before_exiting_on_sigterm(key: str, var_dir: Path, serve: Callable[..., Serve]) -> None:
    server = serve(var_dir)
    load = Load(server.url, key).start(4)
    try:
        until(lambda: len(load.completed) >= 40, 60, what="requests completed under load")
    finally:
        load.stop.set()
        code = server.stop(signal.SIGTERM, timeout=45)
        load.finish()
    assert code == 0
    counts = recorded(load.completed)  # no restart: the stopping serve wrote them all
    assert set(counts) == load.completed and set(counts.values()) == {1}
    assert list((var_dir / "usage-journal").glob("*.jnl")) == []


def unreachable_database() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    return "sqlite:////nonexistent-llmproxy-dir/usage.sqlite3"  # cannot be opened


def test_it_loses_nothing_while_the_database_is_down(key: str, var_dir: Path, serve: Callable[..., Serve]) -> None:
    server = serve(var_dir, "--no-ingest")
    ids = set()
    with httpx.Client(timeout=10) as client:
        for i in range(8):
            rid = f"down-{i}"
            r = client.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}",
                            "x-request-id": rid}, json={"model": "gpt-test", "stream": i % 2 == 0,
                            "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
            assert r.status_code == 200
            ids.add(rid)
    env = {**child_env(var_dir=var_dir), "DATABASE_URL": unreachable_database(), "LLMPROXY_LOG_LEVEL": "INFO"}
    down = Child([sys.executable, "manage.py", "ingest_usage"], env).start()
    try:
        until(lambda: "insert failed" in down.output(), 30, every=0.1, what="the ingester fails to insert")
        assert recorded(ids) == {}
    finally:
        down.stop()
    assert list((var_dir / "usage-journal").glob("*.jnl"))  # still journaled, nothing dropped
    back = Child([sys.executable, "manage.py", "ingest_usage"], child_env(var_dir=var_dir)).start()
    try:
        until(lambda: len(recorded(ids)) == len(ids), 30, what="the records written once the database is back")
    finally:
        back.stop()
    assert set(recorded(ids).values()) == {1}
