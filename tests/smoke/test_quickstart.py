"""What `make run` does, as separate processes on a fresh var/ directory (embedded profile)."""

from __future__ import annotations

import json
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
    e.update(LLMPROXY_VAR_DIR=str(tmp_path / "var"), LLMPROXY_SERVER_PORT=str(free_port()), DATABASE_URL=f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}",
             DJANGO_SETTINGS_MODULE="llmproxy_site.settings", LLMPROXY_SERVE_JOBS="off")  # fmt: skip
    e.pop("DJANGO_SECRET_KEY", None)
    e.pop("LLMPROXY_ENCRYPTION_KEY", None)
    return e


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def port(env: dict[str, str]) -> int:
    return int(env["LLMPROXY_SERVER_PORT"])


@pytest.fixture(scope="module")
def first_start(env: dict[str, str], port: int) -> str:
    """What ``bootstrap`` prints on a fresh install (told the port the server will use)."""
    assert manage(env, "migrate", "--noinput", "-v0").returncode == 0
    out = manage(env, "bootstrap").stdout
    assert manage(env, "bootstrap").stdout.startswith("Users exist already")
    return out


@pytest.fixture(scope="module")
def served(env: dict[str, str], first_start: str, port: int) -> Iterator[tuple[str, str]]:
    key = re.search(r"API key:\s+(\S+)", first_start)
    assert key, first_start
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
    assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["demo"]
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


def test_it_writes_journaled_usage_on_graceful_shutdown(served: tuple[str, str], env: dict[str, str]) -> None:
    _, key = served
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


def test_the_printed_curl_line_gets_a_demo_answer(served: tuple[str, str], first_start: str) -> None:
    (line,) = [ln.strip() for ln in first_start.splitlines() if ln.strip().startswith("curl ")]
    done = subprocess.run(["bash", "-c", line + " --silent --show-error --max-time 20"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["model"] == "demo"
    assert reply["choices"][0]["message"]["content"].startswith("[llmproxy demo provider]")
    assert reply["usage"]["completion_tokens"] > 0


def test_demo_remove_and_add(served: tuple[str, str], env: dict[str, str]) -> None:
    url, key = served

    def models_soon(expected: list[str]) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            seen = [m["id"] for m in httpx.get(url + "/v1/models", headers={"x-api-key": key}).json()["data"]]
            if seen == expected:
                break
            time.sleep(0.1)
        return seen

    assert manage(env, "demo", "--remove").stdout.strip() == "removed the demo provider"
    assert models_soon([]) == []
    assert manage(env, "demo", "--remove").stdout.strip() == "no demo provider to remove"
    assert "added the demo provider" in manage(env, "demo", "--add").stdout
    assert models_soon(["demo"]) == ["demo"]
