"""PostgreSQL + Redis only: several nodes, and docker-compose.yml's commands run natively.

There is no Docker engine here, so the compose file is proven by starting the command of
each of its services as a process (migrate, two web, ingester, worker, beat) against
PostgreSQL and Redis and serving traffic through them.
"""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from . import test_usage_ledger as ledger
from .conftest import BASE_DIR, Child, Serve, child_env, free_port, until
from .test_usage_ledger import Load, kill_all, recorded

key = ledger.key  # the fixtures, shared
serve = ledger.serve

# Collected only on PostgreSQL + Redis (see conftest.py's collect_ignore).
pytestmark = pytest.mark.django_db(transaction=True)


def test_it_records_every_request_once_when_one_node_of_two_is_killed(
    key: str, tmp_path: Path, serve: Callable[..., Serve]
) -> None:
    nodes = [serve(tmp_path / "node-a"), serve(tmp_path / "node-b")]
    loads = [Load(n.url, key).start(3) for n in nodes]
    try:
        until(lambda: min(len(ld.completed) for ld in loads) >= 30, 60, what="both nodes serve")
        kill_all(nodes[0])
        restarted = serve(tmp_path / "node-a")
        loads[0].url = restarted.url
        done = len(loads[0].completed)
        until(lambda: len(loads[0].completed) >= done + 10, 30, what="the restarted node serves")
    finally:
        for ld in loads:
            ld.finish()
    completed = loads[0].completed | loads[1].completed
    until(lambda: len(recorded(completed)) == len(completed), 30, what="every completed request recorded")
    assert set(recorded(completed).values()) == {1}


def compose_command(service: str, port: int | None = None) -> list[str]:
    """A docker-compose.yml service's command as a local process: this interpreter, a free port."""
    spec = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())["services"][service]
    cmd = spec["command"]
    if cmd[:2] == ["sh", "-c"]:
        script = cmd[2].replace("$$", "$").replace("python manage.py", shlex.quote(sys.executable) + " manage.py")
        if port is not None:
            script = script.replace("--host 0.0.0.0 --port 8000", f"--host 127.0.0.1 --port {port}")
        return ["sh", "-c", script]
    if cmd[0] == "python":
        return [sys.executable, *cmd[1:]]
    if cmd[0] == "celery":
        return [sys.executable, "-m", "celery", *cmd[1:]]
    raise AssertionError(f"unknown command form for {service}: {cmd}")


def test_it_serves_through_every_docker_compose_service_run_natively(key: str, tmp_path: Path) -> None:
    env = child_env(var_dir=tmp_path / "var", LLMPROXY_WEB_WORKERS="1")
    services = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())["services"]
    assert {"migrate", "web", "ingester", "worker", "beat"} <= set(services)
    migrate = Child(compose_command("migrate"), env).start()
    assert migrate.proc is not None and migrate.proc.wait(120) == 0, migrate.output()
    migrate.stop()
    ports = [free_port(), free_port()]
    procs = {f"web-{i}": Child(compose_command("web", p), env) for i, p in enumerate(ports)}
    procs |= {name: Child(compose_command(name), env) for name in ("ingester", "worker", "beat")}
    try:
        for proc in procs.values():
            proc.start()
        for p in ports:
            web = Serve(env)
            web.port, web.proc, web._log = p, procs[f"web-{ports.index(p)}"].proc, procs[f"web-{ports.index(p)}"]._log
            web.wait_ready(90)
        ids = set()
        with httpx.Client(timeout=10) as client:
            for i in range(20):
                rid = f"compose-{i}"
                r = client.post(f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions",
                                headers={"Authorization": f"Bearer {key}", "x-request-id": rid},
                                json={"model": "gpt-test", "stream": i % 3 == 0,
                                      "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
                assert r.status_code == 200, r.text
                ids.add(rid)
        until(lambda: len(recorded(ids)) == len(ids), 30, what="the ingester service writes the web journal")
        assert set(recorded(ids).values()) == {1}
        assert all(proc.alive() for proc in procs.values()), {n: p.output()[-500:] for n, p in procs.items()}
    finally:
        for proc in procs.values():
            proc.stop(signal.SIGTERM, timeout=40)
