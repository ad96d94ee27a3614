"""Real processes against the test database: ``manage.py serve``, commands, Celery workers.

Children get the test process's database (the SQLite test file, or the PostgreSQL test
database when ``DATABASE_URL`` is set), its secrets, and its Redis when ``REDIS_URL`` is
set, so what they do is visible to the test and the other way round.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings

BASE_DIR = Path(__file__).resolve().parents[2]

# Several nodes need a shared PostgreSQL and Redis (INTERFACE.md section 13): CI's second
# pass. On the embedded profile these files are not collected at all rather than skipped,
# so a green run never hides a skipped test.
_SHARED = os.environ.get("DATABASE_URL", "").startswith("postgres") and bool(os.environ.get("REDIS_URL"))
collect_ignore = [] if _SHARED else ["test_usage_nodes.py"]


def database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    assert connection.vendor == "postgresql", connection.vendor
    auth = quote(s["USER"] or "") + (":" + quote(s["PASSWORD"]) if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def child_env(*, var_dir: Path | None = None, embedded_broker: bool = False, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("LLMPROXY_CONFIG", "LLMPROXY_SERVE_JOBS", "LLMPROXY_SERVER_PORT", "CLI_PROXY_SERVER_PORT"):
        env.pop(name, None)
    # Failed-key throttling off: every child of the suite shares one Redis and one client
    # address, so earlier tests' refused keys would turn a later test's expected 401 into a
    # 429. The throttle itself is tested in tests/django/test_key_throttle.py.
    env["LLMPROXY_CLIENTS_MAX_KEY_FAILURES"] = "0"
    env.update(
        DATABASE_URL=database_url(),
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        LLMPROXY_ENCRYPTION_KEY=",".join(settings.LLMPROXY_ENCRYPTION_KEYS),
        LLMPROXY_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    if var_dir is not None:
        env["LLMPROXY_VAR_DIR"] = str(var_dir)
    if embedded_broker:
        env.pop("REDIS_URL", None)
        env.pop("CELERY_BROKER_URL", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(check: Callable[[], Any], timeout: float, *, every: float = 0.02, what: str = "condition") -> float:
    """Wait for ``check()`` to be truthy; return the seconds it took."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not true within {timeout} s")
        time.sleep(every)


class Child:
    """A child process whose output goes to a temporary file (read it when a test fails)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Child:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.args, cwd=BASE_DIR, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode


class Serve(Child):
    """``manage.py serve`` on a free loopback port."""

    def __init__(self, env: dict[str, str], *extra: str) -> None:
        self.port = free_port()
        super().__init__([sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                          *extra], env)  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 45) -> None:
        """Up once an LLM route answers (the engine has its first snapshot by then)."""

        def answers() -> bool:
            assert self.alive(), f"serve exited:\n{self.output()}"
            try:
                return httpx.get(self.url + "/v1/models", timeout=2).status_code == 401
            except httpx.TransportError:
                return False

        until(answers, timeout, every=0.1, what=f"serve on port {self.port} ready")


def children_of(pid: int) -> dict[int, str]:
    """Live (non-zombie) child processes of ``pid``: pid -> command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = cmdline
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def serving(count: int) -> Iterator[list[Serve]]:
    """``count`` serving processes without background jobs on the test database, all ready; stopped after."""
    env = child_env()
    procs = [Serve(env, "--no-jobs") for _ in range(count)]
    try:
        for s in procs:
            s.start()
        for s in procs:
            s.wait_ready()
        yield procs
    finally:
        for s in procs:
            s.stop()


@pytest.fixture(scope="module")
def servers(django_db_setup: Any) -> Iterator[list[Serve]]:
    """Two serving processes without background jobs, on the test database."""
    with serving(2) as procs:
        yield procs
