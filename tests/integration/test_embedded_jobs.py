"""``serve`` runs its own Celery worker and beat in the embedded profile, and takes them down with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from proxy.jobs.rollups import SETTLE
from proxy.jobs.schedules import setup_schedules
from proxy.models import UsageDaily, UsageRecord

from .conftest import BASE_DIR, Serve, child_env, children_of, is_running, until
from .sleepy import Sleepy


@pytest.mark.django_db(transaction=True)
def test_it_runs_scheduled_jobs_through_the_embedded_worker_and_stops_them_with_serve(tmp_path: Path) -> None:
    setup_schedules()
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.exclude(task="proxy.tasks.rollup_usage").update(enabled=False)
    assert PeriodicTask.objects.filter(task="proxy.tasks.rollup_usage").update(interval=every_second) == 1
    now = timezone.now() - SETTLE - timedelta(minutes=1)  # settled rows: the rollup takes them all
    UsageRecord.objects.bulk_create([
        UsageRecord(request_id=f"e-{i}", created_at=now - timedelta(days=i % 2), user_id=1, key_id=1,
                    ingress="openai_chat", model="gpt-test", provider="up", status_code=200, prompt_tokens=i,
                    cost_usd=Decimal("0.5"))
        for i in range(6)
    ])  # fmt: skip
    # Its own var/ (broker files, the jobs lock) and no Redis: the embedded profile, on the test database.
    serve = Serve(child_env(var_dir=tmp_path, embedded_broker=True)).start()
    try:
        serve.wait_ready()
        kids = children_of(serve.pid)
        roles = sorted(c.split(" -A llmproxy_site ", 1)[-1].split()[0] for c in kids.values() if " -m celery " in c)
        assert roles == ["beat", "worker"], kids
        try:
            until(lambda: UsageDaily.objects.count() == 2, 45, every=0.2, what="the beat's rollup")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{serve.output()}") from None
        assert sorted(UsageDaily.objects.values_list("requests", "prompt_tokens")) == [(3, 0 + 2 + 4), (3, 1 + 3 + 5)]
        assert (tmp_path / "celery-broker").is_dir()
    finally:
        code = serve.stop(signal.SIGTERM)
        out = serve.output() if serve.proc is not None else ""
    assert code == 0, out
    until(lambda: not any(is_running(pid) for pid in kids), 10, what="worker and beat stopped")
    assert "Traceback" not in out and "celery@" not in out and "beat v" not in out, out  # no banners, no errors


def test_it_starts_the_jobs_once_per_var_dir_and_restarts_a_dead_child(tmp_path: Path) -> None:
    jobs = Sleepy.start(tmp_path, check_every=0.05)
    assert jobs is not None
    try:
        assert Sleepy.start(tmp_path) is None  # a second serve on the same var/ starts no second beat
        first = jobs.pids
        assert all(is_running(p) for p in first.values())
        os.kill(first["worker"], signal.SIGKILL)
        until(lambda: jobs.pids["worker"] != first["worker"] and is_running(jobs.pids["worker"]), 5,
              what="the worker restarted")  # fmt: skip
        assert jobs.pids["beat"] == first["beat"]
    finally:
        jobs.terminate()
        jobs.wait(10)
    assert not any(is_running(p) for p in jobs.pids.values())
    again = Sleepy.start(tmp_path)  # the lock went with the first
    assert again is not None
    again.terminate()
    again.wait(10)


@pytest.fixture
def orphan_check(tmp_path: Path) -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"pids": []}
    yield state
    for pid in state["pids"]:  # never leave sleepers behind, even when the test fails
        if is_running(pid):
            os.kill(pid, signal.SIGKILL)


def test_it_takes_the_jobs_down_when_serve_is_killed(tmp_path: Path, orphan_check: dict[str, Any]) -> None:
    script = (
        "import sys, time, pathlib\nfrom tests.integration.sleepy import Sleepy\n"
        "jobs = Sleepy.start(pathlib.Path(sys.argv[1]))\nprint(*jobs.pids.values(), flush=True)\ntime.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=BASE_DIR, stdout=subprocess.PIPE,
                              env=child_env(DJANGO_SETTINGS_MODULE="llmproxy_site.settings"))  # fmt: skip
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        orphan_check["pids"] = pids
        assert len(pids) == 2 and all(is_running(p) for p in pids)
        assert Sleepy.start(tmp_path) is None  # held by the other process
        parent.kill()  # SIGKILL: no finally, no atexit in the parent
        parent.wait(10)
        until(lambda: not any(is_running(p) for p in pids), 5, what="children died with their parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
    later = Sleepy.start(tmp_path)
    assert later is not None
    later.terminate()
    later.wait(10)
