"""Time the report pages over HTTP against the bench database, as a browser would fetch them.

The site runs as ``manage.py serve --no-jobs`` (uvicorn, one process) on a local port. Each
fetch opens a new connection, sends the session cookie and reads the whole body (the CSV:
until its first 64 KiB). A page is timed ``repeat`` times after one warm-up fetch; the
median is what docs/benchmarks.md reports, next to the load average of the machine.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BUDGET_MS = 300.0
ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-admin-password"


def _staff() -> None:
    from accounts.models import User

    user, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    user.set_password(PASSWORD)
    user.save()


def pages() -> list[tuple[str, str, bool]]:
    """(label, path, stream) of each page to time; the deep pages' cursors come from the data."""
    from proxy.models import UsageRecord
    from proxy.reports.keyset import encode

    total = UsageRecord.objects.count()
    deep = UsageRecord.objects.order_by("-created_at", "-id").values_list("created_at", "id")[total // 2]
    cursor = encode(*deep)
    return [
        ("admin dashboard, 24 h", "/admin/?window=24h", False),
        ("admin dashboard, 7 days", "/admin/?window=7d", False),
        ("admin dashboard, 30 days", "/admin/?window=30d", False),
        ("portal, 30 days (a member's)", "/?user=bench-user-07", False),
        ("portal, 90 days, one model", "/?user=bench-user-07&since=2000-01-01&model=gpt-4o", False),
        ("admin usage list, first page", "/admin/proxy/usagerecord/", False),
        ("admin usage list, 5 millionth row", f"/admin/proxy/usagerecord/?before={cursor}", False),
        ("admin usage list, one model", "/admin/proxy/usagerecord/?model=claude-haiku", False),
        ("API usage list, first page", "/api/v1/usage?limit=100", False),
        ("API usage list, 5 millionth row", f"/api/v1/usage?limit=100&cursor={cursor}", False),
        ("API usage summary, 90 days by model", "/api/v1/usage/summary?group_by=model&since=2000-01-01", False),
        ("CSV export, first bytes", "/api/v1/usage/export", True),
    ]


def _login(base: str) -> httpx.Cookies:
    with httpx.Client(base_url=base, timeout=60) as c:
        c.get("/admin/login/")
        r = c.post("/admin/login/", data={"username": "bench-admin", "password": PASSWORD, "next": "/admin/",
                                          "csrfmiddlewaretoken": c.cookies.get("csrftoken", "")})  # fmt: skip
        assert r.status_code == 302, f"login failed: {r.status_code}"
        return c.cookies


def _fetch(base: str, cookies: httpx.Cookies, path: str, stream: bool) -> tuple[float, int, int]:
    t = time.perf_counter()
    with httpx.Client(base_url=base, cookies=cookies, timeout=120) as c:
        if stream:
            with c.stream("GET", path) as r:
                size = 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size >= 65536:
                        break
                return (time.perf_counter() - t) * 1000, r.status_code, size
        r = c.get(path)
        return (time.perf_counter() - t) * 1000, r.status_code, len(r.content)


def _serve(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LLMPROXY_VAR_DIR": str(ROOT / "var" / "bench-reports")}
    proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--no-jobs", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the site did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))


def run(repeat: int, port: int, only: str = "") -> list[dict[str, Any]]:
    from proxy.models import UsageDaily, UsageHourly, UsageRecord

    logging.getLogger("httpx").setLevel(logging.WARNING)
    _staff()
    rows = UsageRecord.objects.count()
    print(f"usage rows: {rows:,}; rollup rows: {UsageDaily.objects.count():,} daily, "
          f"{UsageHourly.objects.count():,} hourly")  # fmt: skip
    targets = [t for t in pages() if only.lower() in t[0].lower()]
    proc = _serve(port)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        cookies = _login(base)
        for label, path, stream in targets:
            ms, status, size = _fetch(base, cookies, path, stream)  # warm-up: the first query of a kind
            times = []
            loads = []
            for _ in range(repeat):
                loads.append(os.getloadavg()[0])
                ms, status, size = _fetch(base, cookies, path, stream)
                times.append(ms)
            med = statistics.median(times)
            result = {"page": label, "path": path, "status": status, "bytes": size, "median_ms": med,
                      "min_ms": min(times), "max_ms": max(times), "load": statistics.median(loads)}  # fmt: skip
            results.append(result)
            flag = "ok " if med <= BUDGET_MS and status == 200 else "OVER" if status == 200 else f"HTTP {status}"
            print(f"{flag:4} {label:38} median {med:7.1f} ms  (min {min(times):6.1f}, max {max(times):7.1f}; "
                  f"{size:>8} B; load {result['load']:.1f})", flush=True)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    return results


def explain(only: str = "") -> None:
    """EXPLAIN ANALYZE of every query one fetch of each page runs (in-process, the test client)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    _staff()
    client = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1")
    client.force_login(User.objects.get(username="bench-admin"))
    for label, path, stream in [t for t in pages() if only.lower() in t[0].lower()]:
        t = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
            if stream:
                next(iter(response.streaming_content))  # type: ignore[attr-defined]
        wall = (time.perf_counter() - t) * 1000
        slow = []
        for q in captured.captured_queries:
            if float(q["time"]) >= 0.02:
                slow.append(q)
        print(f"== {label}: {wall:.0f} ms in-process, {len(captured.captured_queries)} queries, "
              f"{sum(float(q['time']) for q in captured.captured_queries) * 1000:.0f} ms in the database")  # fmt: skip
        for q in slow:
            print(f"-- {float(q['time']) * 1000:.0f} ms: {q['sql'][:300]}")
            with connection.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"])
                for (line,) in cur.fetchall():
                    print("   " + line)
