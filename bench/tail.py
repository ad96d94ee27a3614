"""Where the latency tail comes from: time requests one at a time, then explain the slow ones.

    python -m bench.tail --port P --gateway-pid PID --trace DIR [--seconds 10] [--body-file F --header "K: V"]

The gateway must run with ``bench/trace`` on its PYTHONPATH and ``BENCH_TRACE=DIR`` (see
bench/trace/sitecustomize.py). One keep-alive connection sends the request back to back;
around every request the client reads the gateway main thread's and the other core-0
processes' scheduler counters (``/proc/<pid>/task/<tid>/schedstat``: time run, time
waiting for a CPU). After the run it asks the gateway for its trace (SIGUSR2) and sorts
every request slower than the threshold into the first cause that explains it:

- ``gc gen N``: a garbage collection of generation N overlapped it;
- ``loop stall: <what>``: the event loop was busy with something else (the watchdog's
  stack sample names it);
- ``waiting for the CPU``: the gateway was runnable but another process (the ingester,
  or other work on the machine) had the core;
- ``unexplained``: none of these.

Prints one JSON line: percentiles, and per cause the count and the added time.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import orjson


def schedstat(pid: int, tid: int | None = None) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting) of one thread, or (0, 0) if it is gone."""
    try:
        f = Path(f"/proc/{pid}/task/{tid or pid}/schedstat").read_text().split()
        return int(f[0]), int(f[1])
    except (OSError, IndexError, ValueError):
        return 0, 0


def request_bytes(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}", "content-type: application/json",
            f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def read_reply(sock: socket.socket, buf: bytearray) -> int:
    """Read one whole HTTP/1.1 reply (content-length or chunked) from ``buf`` + the socket; its status."""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536) or b""
    end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    if b"transfer-encoding: chunked" in head:
        while not buf.endswith(b"0\r\n\r\n"):
            buf += sock.recv(65536)
        del buf[:]
    else:
        i = head.index(b"content-length:")
        n = int(head[i + 15 : head.index(b"\r\n", i)])
        while len(buf) < end + n:
            buf += sock.recv(65536)
        del buf[: end + n]
    return status


def threads(pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


def run(port: int, request: bytes, seconds: float, watch: dict[str, tuple[int, int | None]]) -> list[dict[str, Any]]:
    """Send ``request`` back to back for ``seconds``; one sample per request.

    ``watch["gateway"]`` also gets one entry per other thread of that process (``t<tid>``)."""
    if "gateway" in watch:
        gw = watch["gateway"][0]
        watch = {**watch, **{f"t{tid}": (gw, tid) for tid in threads(gw) if tid != gw}}
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        before = {k: schedstat(*v) for k, v in watch.items()}
        t0 = time.monotonic()
        sock.sendall(request)
        status = read_reply(sock, buf)
        t1 = time.monotonic()
        after = {k: schedstat(*v) for k, v in watch.items()}
        samples.append({"t0": t0, "t1": t1, "status": status,
                        **{f"{k}_run": (after[k][0] - before[k][0]) / 1e9 for k in watch},
                        **{f"{k}_wait": (after[k][1] - before[k][1]) / 1e9 for k in watch}})  # fmt: skip
    sock.close()
    return samples


def load_trace(directory: Path, pid: int, timeout: float = 5.0) -> dict[str, Any]:
    path = directory / f"trace-{pid}.json"
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            data: dict[str, Any] = orjson.loads(path.read_bytes())
            return data
        except (OSError, orjson.JSONDecodeError):
            time.sleep(0.05)
    return {"gc": [], "stalls": [], "stacks": [], "threads": {}}


def _overlaps(events: list[list[Any]], t0: float, t1: float, min_len: float = 0.0) -> list[list[Any]]:
    return [e for e in events if e[0] < t1 and e[0] + e[1] > t0 and e[1] >= min_len]


def explain(samples: list[dict[str, Any]], trace: dict[str, Any], threshold_s: float, cpu_p50: float) -> dict[str, Any]:
    """Sort every request slower than ``threshold_s`` into its first cause."""
    causes: dict[str, dict[str, float]] = {}
    stacks = trace.get("stacks", [])
    names = {f"t{k}": v for k, v in trace.get("threads", {}).items()}
    for s in samples:
        wall = s["t1"] - s["t0"]
        if wall < threshold_s:
            continue
        t0, t1 = s["t0"], s["t1"]
        gcs = _overlaps(trace.get("gc", []), t0, t1, 0.0002)
        busy_threads = [names.get(k[:-4], k[:-4]) for k in s
                        if k.startswith("t") and k.endswith("_run") and s[k] > 0.0003
                        and names.get(k[:-4]) != "bench-trace"]  # fmt: skip
        others = [k[:-4] for k in s if k.endswith("_run") and not k.startswith(("t", "gateway")) and s[k] > 0.0003]
        if gcs:
            worst = max(gcs, key=lambda g: g[1])
            cause = f"gc gen {worst[2]}"
        elif s.get("gateway_wait", 0) > wall / 2:
            cause = "waiting for the CPU" + (f" ({', '.join(others)} ran)" if others else " (other work on the core)")
        elif busy_threads:
            cause = f"another gateway thread held the GIL ({', '.join(sorted(set(busy_threads)))})"
        elif s.get("gateway_run", 0) > 2 * cpu_p50:
            found = [name for t, name in stacks if t0 - 0.002 <= t <= t1 + 0.001]
            top = max(set(found), key=found.count) if found else ""
            if not top or top.startswith("Runner.run"):
                # No Python frame below the loop: the time went to uvloop's C code (socket reads
                # and writes, whose loopback send does the receiver's TCP work inline) or to a CPU
                # slowed by its neighbours (cache and TLB refills after another process ran).
                cause = "more CPU than usual, none of it in Python (uvloop's C code, or a core shared)"
            else:
                cause = f"the loop was busy: {top}"
        else:
            cause = "unexplained (neither CPU nor a collection: a wait outside the process)"
        c = causes.setdefault(cause, {"requests": 0, "ms": 0.0})
        c["requests"] += 1
        c["ms"] += wall * 1000
    return {k: {"requests": int(v["requests"]), "mean_ms": round(v["ms"] / v["requests"], 2)}
            for k, v in sorted(causes.items(), key=lambda kv: -kv[1]["requests"])}  # fmt: skip


def summarise(samples: list[dict[str, Any]], trace: dict[str, Any], threshold_ms: float | None) -> dict[str, Any]:
    walls = sorted((s["t1"] - s["t0"]) * 1000 for s in samples)
    n = len(walls)
    p50, p99 = walls[n // 2], walls[min(n - 1, int(n * 0.99))]
    threshold = threshold_ms if threshold_ms is not None else max(p99, 2 * p50)
    cpu = sorted(s.get("gateway_run", 0) * 1000 for s in samples)
    wait = sorted(s.get("gateway_wait", 0) * 1000 for s in samples)
    gcs = trace.get("gc", [])
    span = samples[-1]["t1"] - samples[0]["t0"] if samples else 1.0
    by_gen = {g: sorted(e[1] * 1000 for e in gcs if e[2] == g and samples[0]["t0"] <= e[0] <= samples[-1]["t1"])
              for g in (0, 1, 2)}  # fmt: skip
    return {
        "requests": n, "p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "max_ms": round(walls[-1], 3),
        "mean_ms": round(statistics.fmean(walls), 3), "threshold_ms": round(threshold, 3),
        "slow": sum(1 for w in walls if w >= threshold), "non_2xx": sum(1 for s in samples if s["status"] >= 300),
        "causes": explain(samples, trace, threshold / 1000, cpu[n // 2] / 1000),
        # The gateway main thread's own CPU per request, and its time runnable but off the CPU:
        # the first is the gateway's tail, the second the machine's.
        "cpu_p50_ms": round(cpu[n // 2], 3), "cpu_p99_ms": round(cpu[min(n - 1, int(n * 0.99))], 3),
        "cpu_max_ms": round(cpu[-1], 3), "wait_p99_ms": round(wait[min(n - 1, int(n * 0.99))], 3),
        "gc_per_s": {str(g): round(len(v) / span, 1) for g, v in by_gen.items()},
        "gc_max_ms": {str(g): round(v[-1], 2) if v else 0 for g, v in by_gen.items()},
        "gc_frozen": trace.get("frozen"), "gc_threshold": trace.get("threshold"),
        "stalls_over_1ms": sum(1 for e in trace.get("stalls", []) if e[1] > 0.001),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/v1/chat/completions")
    p.add_argument("--body-file", required=True)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--gateway-pid", type=int, default=0, help="traced gateway (0: a direct run, no trace)")
    p.add_argument("--watch", action="append", default=[], help="NAME=PID of another process on the core")
    p.add_argument("--trace", default="")
    p.add_argument("--threshold-ms", type=float, default=None)
    a = p.parse_args()
    headers = dict(h.split(": ", 1) for h in a.header)
    request = request_bytes(a.port, a.path, Path(a.body_file).read_bytes(), headers)
    watch: dict[str, tuple[int, int | None]] = {}
    if a.gateway_pid:
        watch["gateway"] = (a.gateway_pid, None)
    for w in a.watch:
        name, pid = w.split("=", 1)
        watch[name] = (int(pid), None)
    run(a.port, request, 1.0, watch)  # warm-up
    samples = run(a.port, request, a.seconds, watch)
    trace = load_trace(Path(a.trace), a.gateway_pid) if a.gateway_pid and a.trace else {}
    print(orjson.dumps(summarise(samples, trace, a.threshold_ms)).decode())


if __name__ == "__main__":
    main()
