"""What `make run` does, as separate processes on a fresh var/ directory (embedded profile)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp_path = tmp_path_factory.mktemp("quickstart")
    e = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    e.update(LLMPROXY_VAR_DIR=str(tmp_path / "var"), DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}",
             DJANGO_SETTINGS_MODULE="llmproxy_site.settings", LLMPROXY_SERVE_JOBS="off")  # fmt: skip
    e.pop("DJANGO_SECRET_KEY", None)
    e.pop("LLMPROXY_ENCRYPTION_KEY", None)
    return e


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def served(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    assert manage(env, "migrate", "--noinput", "-v0").returncode == 0
    out = manage(env, "bootstrap").stdout
    key = re.search(r"API key:\s+(\S+)", out)
    assert key, out
    assert manage(env, "bootstrap").stdout.startswith("Users exist already")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--no-jobs", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/v1/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, key.group(1)
    finally:
        proc.terminate()
        proc.wait(15)


def test_it_bootstraps_secrets_admin_and_a_first_key(served: tuple[str, str], env: dict[str, str]) -> None:
    url, key = served
    var = Path(env["LLMPROXY_VAR_DIR"])
    assert (var / "secret_key").exists() and (var / "encryption_key").exists()
    r = httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json() == {"object": "list", "data": []}
    assert httpx.get(url + "/v1/models").status_code == 401
    assert httpx.get(url + "/admin/login/").status_code == 200


def test_it_accepts_a_key_created_while_serving(served: tuple[str, str], env: dict[str, str]) -> None:
    url, _ = served
    done = manage(env, "create_api_key", "--user", "bob", "--create-user", "--name", "ci")
    assert done.returncode == 0, done.stderr
    new_key = done.stdout.strip().splitlines()[-1]
    assert new_key.startswith("sk-llmp-")
    deadline = time.monotonic() + 5
    status = 0
    while time.monotonic() < deadline:
        status = httpx.get(url + "/v1/models", headers={"x-api-key": new_key}).status_code
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200


def test_it_flushes_buffered_usage_on_graceful_shutdown(served: tuple[str, str], env: dict[str, str]) -> None:
    _, key = served
    slow = {**env, "LLMPROXY_USAGE_FLUSH_INTERVAL": "3600"}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--no-jobs", "--port", str(port)], cwd=ROOT,
                            env=slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url + "/v1/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        r = httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
        assert r.status_code == 404
        rid = r.headers["x-request-id"]
    finally:
        proc.terminate()
        proc.wait(15)
    code = f"from proxy.models import UsageRecord as U; print(U.objects.filter(request_id='{rid}', status_code=404).count())"
    out = manage(env, "shell", "--no-imports", "-c", code)
    assert out.stdout.strip() == "1", out.stderr


def test_it_serves_the_admins_static_files(served: tuple[str, str]) -> None:
    url, _ = served
    r = httpx.get(url + "/static/admin/css/base.css")
    assert r.status_code == 200 and "text/css" in r.headers["content-type"]
