"""Processes for the bench: pinned with taskset, logged to var/bench/, always stopped."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _more_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of every bench process: its own database and var dir, quiet logs."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{VAR / 'bench.sqlite3'}",
        LLMPROXY_VAR_DIR=str(VAR),
        DJANGO_SETTINGS_MODULE="llmproxy_site.settings",
        LLMPROXY_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


class Proc:
    """A subprocess pinned to ``cpus`` (a taskset list, or None for no pinning)."""

    def __init__(self, name: str, cmd: list[str], *, cpus: str | None, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.cpus = cpus
        self.env = env or bench_env()
        self.log = VAR / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> Proc:
        cmd = ["taskset", "-c", self.cpus, *self.cmd] if self.cpus else self.cmd
        self.started = time.perf_counter()
        with open(self.log, "wb") as log:
            self.popen = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                          preexec_fn=_more_files, start_new_session=True)  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        except ProcessLookupError:
            pass

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU of this process and its worker children so far."""
        return sum(cpu_seconds(pid) for pid in [self.pid, *self.children()])

    def ingesters(self) -> list[int]:
        """The usage ingester among the children (``serve`` starts it; it is not a server process)."""
        out = []
        for pid in self.children():
            try:
                if b"ingest_usage" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    out.append(pid)
            except OSError:
                pass
        return out

    def serving_cpu_seconds(self) -> float:
        """User + system CPU of the server processes (this one, uvicorn/granian workers), not the ingester."""
        skip = set(self.ingesters())
        return sum(cpu_seconds(pid) for pid in [self.pid, *self.children()] if pid not in skip)

    def ingester_cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.ingesters())

    def wait_seconds(self) -> float:
        """Seconds the main thread was runnable but not running (``schedstat``): other work had the core."""
        try:
            return int(Path(f"/proc/{self.pid}/schedstat").read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def children(self) -> list[int]:
        """PIDs of this process's direct children (uvicorn/granian workers)."""
        try:
            return [int(p) for p in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
        except OSError:
            return []


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime from /proc (immune to other work sharing the core, unlike wall-clock rates)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float = 15.0, proc: Proc | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s" + (f":\n{proc.tail()}" if proc else ""))


def post(port: int, path: str, body: bytes, headers: dict[str, str], timeout: float = 5.0) -> tuple[int, bytes]:
    """One blocking HTTP/1.1 POST on a fresh connection (readiness checks, cold start)."""
    head = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data[9:12]) if len(data) >= 12 else 0
    return status, data[data.find(b"\r\n\r\n") + 4 :]


def wait_ok(port: int, path: str, body: bytes, headers: dict[str, str], timeout: float = 30.0,
            proc: Proc | None = None, interval: float = 0.01) -> float:  # fmt: skip
    """Poll until the request answers 200; return the seconds since ``proc`` started (or now)."""
    start = proc.started if proc is not None else time.perf_counter()
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            status, data = post(port, path, body, headers)
            if status == 200:
                return time.perf_counter() - start
            last = f"{status} {data[:300]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(interval)
    raise RuntimeError(
        f"no 200 from :{port}{path} within {timeout}s (last: {last})" + (f"\n{proc.tail()}" if proc else "")
    )
