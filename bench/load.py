"""Closed-loop HTTP load with wrk (Debian's package) and a Lua script for the POST body.

wrk is C and event-driven, so one thread on a shared core outruns any Python server we
point it at; its ``done`` hook prints exact percentiles from its histogram as one JSON
line, which is all we parse.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson

LUA = """
wrk.method = "POST"
wrk.path = "%(path)s"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
%(headers)s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%%d,"duration_us":%%d,"bytes":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d,"mean":%%.1f,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(slots=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: int  # socket errors and timeouts
    non_2xx: int
    #: Server CPU (user + system) per request, when the caller measured it: the number that
    #: other work on a shared machine does not distort. 1e6 / cpu_us is the one-core ceiling.
    cpu_us: float = 0.0
    #: Share of the window the server's main thread spent runnable but off the CPU (other
    #: processes had its core): what makes wall-clock req/s fall short of 1e6 / cpu_us.
    wait_share: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {f: getattr(self, f) for f in self.__slots__}  # type: ignore[attr-defined]


def ensure_wrk() -> str:
    """wrk's path, installing Debian's package on first use (the bench runs as root)."""
    path = shutil.which("wrk")
    if path:
        return path
    print("bench: installing wrk (apt-get install -y wrk)", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("bench: wrk is not available and could not be installed")
    return path


def script(path: str, body: bytes, headers: dict[str, str]) -> Path:
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    text = LUA % {"path": path, "body": body.decode(), "headers": lines}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-", delete=False) as f:
        f.write(text)
    return Path(f.name)


def wrk(
    url: str,
    path: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    connections: int = 64,
    seconds: float = 5.0,
    threads: int = 1,
    cpus: str | None = None,
    timeout: float = 10.0,
) -> LoadResult:
    """Run wrk for ``seconds`` with ``connections`` keep-alive connections; return its numbers."""
    lua = script(path, body, headers or {})
    try:
        cmd = [ensure_wrk(), "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", f"{max(1, round(timeout))}s", "-s", str(lua), url]  # fmt: skip
        if cpus is not None:
            cmd = ["taskset", "-c", cpus, *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout + 30)
    finally:
        lua.unlink(missing_ok=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    d = orjson.loads(line[6:])
    secs = d["duration_us"] / 1e6
    return LoadResult(
        requests=d["requests"],
        seconds=round(secs, 3),
        rps=round(d["requests"] / secs, 1) if secs else 0.0,
        p50_ms=d["p50"] / 1000,
        p90_ms=d["p90"] / 1000,
        p99_ms=d["p99"] / 1000,
        max_ms=d["max"] / 1000,
        mean_ms=round(d["mean"] / 1000, 3),
        errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
        non_2xx=d["status"],
    )
