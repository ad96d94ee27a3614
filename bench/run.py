"""``make bench``: every scenario against the fake upstream directly and through the gateway.

Layout on a 2-core machine: the gateway alone on core 0; the load generator (wrk or the
stream client) and the fake upstream share core 1, so load never steals the gateway's
core. "direct" runs hit the same upstream on the same core with the same client, so the
ratio compares like with like. Each scenario prints one line; the whole run goes to
``var/bench/results.json`` and ``docs/benchmarks.md`` (bench.report).

    python -m bench.run                 # everything (about 8 minutes)
    python -m bench.run --only A,B      # some scenarios
    python -m bench.run --quick         # shorter runs, D capped at 25 s (a smoke test of the harness)
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from . import micro, profile, report
from .fixtures import OPENAI_MODELS
from .load import LoadResult, ensure_wrk, wrk
from .procs import PY, ROOT, VAR, Proc, bench_env, free_port, wait_ok, wait_port

CHAT_PATH = "/v1/chat/completions"
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant. Answer in one short paragraph."},
    {"role": "user", "content": "Explain in two sentences why the sky looks blue during the day and red at sunset."},
]
ALL = "F,A,B,L,C,G,E,D,W,S,T"
DESCRIPTIONS = {
    "A": "OpenAI chat, non-stream passthrough, 64 connections",
    "B": "the same, 1 connection (added latency)",
    "L": "the latency tail at 1 connection, explained from the slow requests (a traced gateway)",
    "C": "streams of 50 chunks, 1 connection (translated and passthrough)",
    "G": "1,000 concurrent paced streams (20 chunks over 0.5 s)",
    "E": "hot reload under load (a config save every 0.5 s)",
    "D": "memory: RSS after start, 100k and 1M requests, 5,000 open streams",
    "F": "cold start of manage.py serve to the first 200",
    "W": "whole machine: 2 workers, everything sharing both cores",
    "S": "ASGI servers: uvicorn vs daphne vs granian (full pipeline)",
    "T": "bare relays: transports and Channels vs plain ASGI vs Django view",
}


def chat_body(model: str, stream: bool = False) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 256, "temperature": 0.2}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def anthropic_body(model: str, stream: bool = True) -> bytes:
    return orjson.dumps({"model": model, "max_tokens": 256, "system": MESSAGES[0]["content"],
                         "messages": [MESSAGES[1]], "stream": stream})  # fmt: skip


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick: bool = args.quick
        ncpu = os.cpu_count() or 1
        self.gw_cpus: str | None = "0" if ncpu >= 2 else None
        self.load_cpus: str | None = "1" if ncpu >= 2 else None
        self.procs: list[Proc] = []
        self.results: dict[str, Any] = {"scenarios": {}, "lines": {}}
        self.key = ""
        self.up_port = 0
        self.anthropic = False
        self._mark = time.monotonic()

    # -- processes ---------------------------------------------------------------------
    def spawn(self, name: str, cmd: list[str], cpus: str | None, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, cmd, cpus=cpus, env=env).start()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def secs(self, full: float) -> float:
        return max(1.0, full / 3) if self.quick else full

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def prepare(self) -> None:
        shutil.rmtree(VAR, ignore_errors=True)
        VAR.mkdir(parents=True)
        ensure_wrk()
        ensure_python_tools()
        env = bench_env()
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        self.up_port = free_port()
        up = self.spawn("upstream", [PY, "-m", "bench.upstream", "--port", str(self.up_port)], self.load_cpus)
        wait_port(self.up_port, proc=up)
        out = subprocess.run([PY, "-m", "bench.fixtures", "setup", "--upstream", f"http://127.0.0.1:{self.up_port}"],
                             cwd=ROOT, env=env, check=True, capture_output=True)  # fmt: skip
        fx = orjson.loads(out.stdout.strip().splitlines()[-1])
        self.key, self.anthropic = fx["key"], fx["anthropic"]

    def gateway(self, name: str = "gateway", *, server: str = "uvicorn", workers: int = 1,
                cpus: str | None = "gw", extra: list[str] | None = None,
                env: dict[str, str] | None = None) -> tuple[Proc, int, float]:  # fmt: skip
        """Start ``manage.py serve`` and wait for its first 200; return it, its port, the seconds it took.

        The usage ingester is ``serve``'s child, so it runs on the gateway's core too (taskset
        is inherited): the "one core" of the scenarios holds the ingester's work as well."""
        port = free_port()
        cmd = [PY, "manage.py", "serve", "--no-jobs", "--port", str(port), "--server", server,
               "--workers", str(workers), *(extra or [])]  # fmt: skip
        proc = self.spawn(name, cmd, self.gw_cpus if cpus == "gw" else cpus, env)
        ready = wait_ok(port, CHAT_PATH, chat_body("bench-chat"), self.auth, proc=proc, timeout=60)
        return proc, port, ready

    # -- measuring ------------------------------------------------------------------------
    def wrk_direct(self, connections: int, seconds: float, cpus: str | None = "load") -> LoadResult:
        return wrk(f"http://127.0.0.1:{self.up_port}", CHAT_PATH, chat_body(OPENAI_MODELS["bench-chat"]),
                   connections=connections, seconds=seconds,
                   cpus=self.load_cpus if cpus == "load" else cpus)  # fmt: skip

    def wrk_gateway(self, port: int, connections: int, seconds: float, cpus: str | None = "load",
                    proc: Proc | None = None) -> LoadResult:  # fmt: skip
        cpu0 = proc.serving_cpu_seconds() if proc is not None else 0.0
        wait0 = proc.wait_seconds() if proc is not None else 0.0
        r = wrk(f"http://127.0.0.1:{port}", CHAT_PATH, chat_body("bench-chat"), headers=self.auth,
                connections=connections, seconds=seconds,
                cpus=self.load_cpus if cpus == "load" else cpus)  # fmt: skip
        if proc is not None and r.requests:
            r.cpu_us = round((proc.serving_cpu_seconds() - cpu0) / r.requests * 1e6, 1)
            r.wait_share = round((proc.wait_seconds() - wait0) / max(0.001, r.seconds), 3)
        return r

    def ingest_cpu_us(self, proc: Proc, requests: int, cpu0: float, timeout: float = 90.0) -> float:
        """The ingester's CPU per request for the records since ``cpu0`` (its CPU then), once it caught up.

        It runs at a lower priority than the gateway, so under load it writes later, not less:
        the bench waits until the journal's backlog is gone before reading its CPU."""
        from llmproxy.journal import backlog_bytes

        end = time.monotonic() + timeout
        while backlog_bytes(VAR / "usage-journal") > 0 and time.monotonic() < end:
            time.sleep(0.2)
        time.sleep(0.3)  # its last commit
        return round((proc.ingester_cpu_seconds() - cpu0) / max(1, requests) * 1e6, 1)

    def streams(self, port: int, path: str, body: bytes, *, conns: int = 1, seconds: float = 5.0, count: int = 0,
                headers: dict[str, str] | None = None, hold: bool = False, rss_pid: int = 0,
                proc: Proc | None = None, stagger: float = 0.0) -> dict[str, Any]:  # fmt: skip
        cpu0 = proc.serving_cpu_seconds() if proc is not None else 0.0
        body_file = VAR / "stream-body.json"
        body_file.write_bytes(body)
        cmd = [PY, "-m", "bench.streams", "--port", str(port), "--path", path, "--body-file", str(body_file),
               "--conns", str(conns), "--seconds", f"{seconds:g}", "--count", str(count),
               "--stagger", f"{stagger:g}"]  # fmt: skip
        for k, v in (headers or {}).items():
            cmd += ["--header", f"{k}: {v}"]
        if hold:
            cmd += ["--hold", "--rss-pid", str(rss_pid)]
        if self.load_cpus:
            cmd = ["taskset", "-c", self.load_cpus, *cmd]
        out = subprocess.run(cmd, cwd=ROOT, env=bench_env(), capture_output=True, timeout=seconds + 180)
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            raise RuntimeError(f"stream client failed: {out.stderr[-800:].decode(errors='replace')}")
        result: dict[str, Any] = orjson.loads(lines[-1])
        if proc is not None and result.get("streams"):
            result["cpu_us_per_stream"] = round((proc.serving_cpu_seconds() - cpu0) / result["streams"] * 1e6, 1)
        return result

    def profiled(self, key: str, proc: Proc, load: Callable[[float], object], seconds: float = 6.0) -> None:
        """Sample ``proc`` with py-spy while ``load(seconds + 2)`` keeps it busy (after the measured run)."""
        if self.quick or profile.py_spy() is None:
            return
        import threading

        worker = threading.Thread(target=load, args=(seconds + 2,))
        worker.start()
        time.sleep(1.0)
        raw = VAR / f"profile-{key}.txt"
        ok = profile.record(proc.pid, seconds, raw, self.load_cpus)
        worker.join()
        if ok:
            self.results.setdefault("profiles", {})[key] = profile.summarise(raw)
            self.save()

    def line(self, key: str, text: str, data: dict[str, Any]) -> None:
        now = time.monotonic()
        timing = {"seconds": round(now - self._mark, 1), "load_avg": round(os.getloadavg()[0], 2)}
        self._mark = now
        self.results["scenarios"][key] = data
        self.results.setdefault("timing", {})[key] = timing
        text += f" [{timing['seconds']:.0f} s, load {timing['load_avg']:.1f}]"
        self.results["lines"][key] = text
        print(f"{key}: {text}", flush=True)
        self.save()

    def save(self) -> None:
        (VAR / "results.json").write_bytes(orjson.dumps(self.results, option=orjson.OPT_INDENT_2))

    # -- scenarios ------------------------------------------------------------------------
    def scenario_F(self) -> None:
        times = []
        for i in range(1 if self.quick else 3):
            proc, _, ready = self.gateway(f"cold-{i}")
            times.append(ready)
            self.stop(proc)
        times.sort()
        med = times[len(times) // 2]
        self.line(
            "F",
            f"cold start to first 200: median {med:.2f} s, max {times[-1]:.2f} s (target <= 3 s)",
            {"median_s": round(med, 3), "max_s": round(times[-1], 3), "runs": [round(t, 3) for t in times]},
        )

    def scenario_A(self, port: int, proc: Proc) -> None:
        secs = self.secs(8)
        self.wrk_gateway(port, 64, 2)  # warm-up: pools, caches, JIT-free Python still likes warm dicts
        direct = self.wrk_direct(64, self.secs(4))
        self.ingest_cpu_us(proc, 1, 0.0)  # the warm-up's records written first
        ing0 = proc.ingester_cpu_seconds()
        gw = self.wrk_gateway(port, 64, secs, proc=proc)
        ingest_us = self.ingest_cpu_us(proc, gw.requests, ing0)
        ratio = gw.rps / direct.rps if direct.rps else 0
        tail = gw.p99_ms / gw.p50_ms if gw.p50_ms else 0.0
        total_us = gw.cpu_us + ingest_us
        per_core = 1e6 / total_us if total_us else 0.0
        self.line("A", f"{gw.rps:,.0f} req/s through the gateway (p50 {gw.p50_ms:.2f} ms, p99 {gw.p99_ms:.2f} ms, "
                       f"p99/p50 {tail:.2f}); CPU per request {gw.cpu_us:.0f} µs serving + {ingest_us:.0f} µs ingesting "
                       f"= {per_core:,.0f} req/s on one core; the gateway waited for its core "
                       f"{gw.wait_share * 100:.0f}% of the window; direct {direct.rps:,.0f} req/s (p50 "
                       f"{direct.p50_ms:.2f}, p99 {direct.p99_ms:.2f}); ratio {ratio:.2f}; errors "
                       f"{gw.errors + gw.non_2xx} (targets p99 <= 2 x p50, >= 5,000 req/s on one core "
                       f"with the ingester)",
                  {"gateway": gw.as_dict(), "direct": direct.as_dict(), "ratio": round(ratio, 3),
                   "p99_over_p50": round(tail, 2), "ingest_cpu_us": ingest_us,
                   "one_core_rps": round(per_core, 0)})  # fmt: skip
        self.profiled("A", proc, lambda secs: self.wrk_gateway(port, 64, secs))

    def scenario_B(self, port: int, proc: Proc) -> None:
        direct = self.wrk_direct(1, self.secs(4))
        gw = self.wrk_gateway(port, 1, self.secs(6), proc=proc)
        add50, add99 = gw.p50_ms - direct.p50_ms, gw.p99_ms - direct.p99_ms
        self.line("B", f"added latency p50 {add50:.3f} ms, p99 {add99:.3f} ms (gateway p50 {gw.p50_ms:.3f} / "
                       f"p99 {gw.p99_ms:.3f} ms, direct {direct.p50_ms:.3f} / {direct.p99_ms:.3f} ms; "
                       f"{gw.rps:,.0f} vs {direct.rps:,.0f} req/s sequential; the gateway waited for its core "
                       f"{gw.wait_share * 100:.0f}% of the window) (target p50 <= 0.5, p99 <= 2 ms)",
                  {"gateway": gw.as_dict(), "direct": direct.as_dict(), "added_p50_ms": round(add50, 3),
                   "added_p99_ms": round(add99, 3)})  # fmt: skip

    def _stream_pair(self, port: int, gw_model: str, up_model: str, up_path: str, up_body: Callable[[str], bytes],
                     n: int, proc: Proc) -> dict[str, Any]:  # fmt: skip
        """One connection, ``n`` streams each: direct to the upstream and through the gateway."""
        direct = self.streams(self.up_port, up_path, up_body(up_model), count=n, seconds=60)
        gw = self.streams(port, CHAT_PATH, chat_body(gw_model, stream=True), count=n, seconds=60, headers=self.auth,
                          proc=proc)  # fmt: skip
        return {"direct": direct, "gateway": gw}

    def scenario_C(self, port: int, proc: Proc) -> None:
        n = 100 if self.quick else 400
        out: dict[str, Any] = {}
        pairs = {"passthrough": ("bench-stream-50", "bench-chat", CHAT_PATH, lambda m: chat_body(m, stream=True))}
        if self.anthropic:
            pairs["translated"] = ("bench-claude-50", "bench-claude", "/v1/messages", anthropic_body)
        for kind, (m50, m1, path, body) in pairs.items():
            self.streams(port, CHAT_PATH, chat_body(m50, stream=True), count=50, seconds=30, headers=self.auth)
            s50 = self._stream_pair(port, m50, "m-50-0", path, body, n, proc)
            s1 = self._stream_pair(port, m1, "m-1-0", path, body, n, proc)
            d50, g50, d1, g1 = s50["direct"], s50["gateway"], s1["direct"], s1["gateway"]
            add_ttfb = g50["ttfb_p50_ms"] - d50["ttfb_p50_ms"]
            add_total = g50["total_p50_ms"] - d50["total_p50_ms"]
            # What 49 more chunks cost the gateway beyond what they cost the upstream and client.
            per_chunk_us = (
                ((g50["total_p50_ms"] - g1["total_p50_ms"]) - (d50["total_p50_ms"] - d1["total_p50_ms"])) / 49 * 1000
            )
            cpu_chunk = (g50.get("cpu_us_per_stream", 0) - g1.get("cpu_us_per_stream", 0)) / 49
            out[kind] = {"s50": s50, "s1": s1, "cpu_us_per_chunk": round(cpu_chunk, 1),
                         "cpu_us_per_stream": g50.get("cpu_us_per_stream", 0), "added_ttfb_ms": round(add_ttfb, 3), "added_total_ms": round(add_total, 3),
                         "per_chunk_us": round(per_chunk_us, 1)}  # fmt: skip
        model = "bench-claude-50" if self.anthropic else "bench-stream-50"
        self.profiled("C", proc, lambda secs: self.streams(port, CHAT_PATH, chat_body(model, stream=True), conns=8,
                                                           seconds=secs, headers=self.auth))  # fmt: skip
        codec = micro.codec_chunk_cost() if self.anthropic else {}
        out["codec"] = codec
        parts = []
        for kind in ("translated", "passthrough"):
            if kind in out:
                o = out[kind]
                parts.append(f"{kind}: added TTFB {o['added_ttfb_ms']:.3f} ms, total {o['s50']['gateway']['total_p50_ms']:.2f} "
                             f"ms vs {o['s50']['direct']['total_p50_ms']:.2f} direct, {o['per_chunk_us']:.1f} µs/chunk wall, "
                             f"{o['cpu_us_per_chunk']:.1f} µs CPU/chunk, {o['cpu_us_per_stream']:.0f} µs CPU/stream")  # fmt: skip
        if not self.anthropic:
            parts.insert(0, "translated: skipped (no Anthropic codec/executor yet)")
        if codec:
            parts.append(f"codec alone {codec['us_per_chunk']:.1f} µs/chunk")
        self.line("C", "; ".join(parts) + " (target TTFB <= 1 ms, <= 20 µs/translated chunk)", out)

    def scenario_G(self, port: int, proc: Proc) -> None:
        """The issue's pace (20 chunks over 0.5 s), and a tenth of it, which one core can sustain."""
        conns = 200 if self.quick else 1000
        secs = self.secs(10)
        out: dict[str, Any] = {"conns": conns}
        texts = []
        for label, model, span in (("fast", "bench-paced", 0.5), ("slow", "bench-paced-slow", 5.0)):
            direct = self.streams(self.up_port, CHAT_PATH, chat_body(OPENAI_MODELS[model], stream=True),
                                  conns=conns, seconds=secs, stagger=span)  # fmt: skip
            gw = self.streams(port, CHAT_PATH, chat_body(model, stream=True), conns=conns, seconds=secs,
                              headers=self.auth, proc=proc, stagger=span)  # fmt: skip
            add = gw["ttfb_p50_ms"] - direct["ttfb_p50_ms"]
            out[label] = {"span": f"{span:g} s", "direct": direct, "gateway": gw, "added_ttfb_p50_ms": round(add, 3)}
            texts.append(f"20 chunks over {span:g} s: {gw['streams_per_s']:,.0f} streams/s held (direct "
                         f"{direct['streams_per_s']:,.0f}), added TTFB p50 {add:.2f} ms (gateway p50 "
                         f"{gw['ttfb_p50_ms']:.2f} / p99 {gw['ttfb_p99_ms']:.2f} ms), "
                         f"{gw.get('cpu_us_per_stream', 0):.0f} µs CPU/stream, errors {gw['errors']}")  # fmt: skip
        # The issue's own figures are for the fast pace.
        out.update(direct=out["fast"]["direct"], gateway=out["fast"]["gateway"],
                   added_ttfb_p50_ms=out["fast"]["added_ttfb_p50_ms"])  # fmt: skip
        self.line("G", f"{conns} concurrent streams; " + "; ".join(texts)
                  + " (target added TTFB p50 <= 5 ms, <= 600 µs CPU/stream)", out)  # fmt: skip

    def scenario_E(self, port: int, gw: Proc) -> None:
        secs = self.secs(10)
        before = self.wrk_gateway(port, 64, secs, proc=gw)
        reloads0 = gw.tail(10**7).count("serving config version")
        bumper = self.spawn("bumper", [PY, "-m", "bench.fixtures", "bump", "--interval", "0.5", "--duration",
                                       f"{secs:g}", "--delay", "4"], self.load_cpus)  # fmt: skip
        time.sleep(4)  # the bumper's Django start-up happens outside the measured window
        during = self.wrk_gateway(port, 64, secs, proc=gw)
        bumper.popen.wait(30) if bumper.popen else None  # type: ignore[func-returns-value]
        self.stop(bumper)
        time.sleep(0.6)
        reloads = gw.tail(10**7).count("serving config version") - reloads0
        blip = during.p99_ms - before.p99_ms
        self.line("E", f"{reloads} reloads in {secs:g} s under 64 connections: p99 {during.p99_ms:.2f} ms vs "
                       f"{before.p99_ms:.2f} ms without (blip {blip:+.2f} ms), max {during.max_ms:.1f} ms, "
                       f"{during.rps:,.0f} vs {before.rps:,.0f} req/s, errors {during.errors + during.non_2xx}",
                  {"reloads": reloads, "before": before.as_dict(), "during": during.as_dict(),
                   "p99_blip_ms": round(blip, 3)})  # fmt: skip

    def tail_client(self, port: int, body: bytes, seconds: float, headers: dict[str, str] | None = None,
                    gw: Proc | None = None, trace: Path | None = None) -> dict[str, Any]:  # fmt: skip
        body_file = VAR / "tail-body.json"
        body_file.write_bytes(body)
        cmd = [PY, "-m", "bench.tail", "--port", str(port), "--body-file", str(body_file), "--seconds", f"{seconds:g}"]
        for k, v in (headers or {}).items():
            cmd += ["--header", f"{k}: {v}"]
        if gw is not None and trace is not None:
            cmd += ["--gateway-pid", str(gw.pid), "--trace", str(trace)]
            cmd += [f"--watch=ingester={pid}" for pid in gw.ingesters()]
        if self.load_cpus:
            cmd = ["taskset", "-c", self.load_cpus, *cmd]
        out = subprocess.run(cmd, cwd=ROOT, env=bench_env(), capture_output=True, timeout=seconds + 60)
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            raise RuntimeError(f"tail client failed: {out.stderr[-800:].decode(errors='replace')}")
        result: dict[str, Any] = orjson.loads(lines[-1])
        return result

    def scenario_L(self) -> None:
        """One connection against a traced gateway: each slow request sorted into its cause."""
        trace = VAR / "trace"
        trace.mkdir(exist_ok=True)
        path = os.pathsep.join([str(ROOT), str(ROOT / "bench" / "trace")])
        gw, port, _ = self.gateway("gateway-traced", env=bench_env(BENCH_TRACE=str(trace), PYTHONPATH=path))
        secs = self.secs(10)
        self.wrk_gateway(port, 64, 2)
        direct = self.tail_client(self.up_port, chat_body(OPENAI_MODELS["bench-chat"]), self.secs(5))
        through = self.tail_client(port, chat_body("bench-chat"), secs, self.auth, gw, trace)
        self.stop(gw)
        add50, add99 = through["p50_ms"] - direct["p50_ms"], through["p99_ms"] - direct["p99_ms"]
        causes = "; ".join(f"{k}: {v['requests']} (mean {v['mean_ms']:.1f} ms)" for k, v in through["causes"].items())
        self.line("L", f"traced, 1 connection: added p50 {add50:.3f} ms, p99 {add99:.3f} ms; the gateway's own CPU "
                       f"per request p50 {through['cpu_p50_ms']:.3f} / p99 {through['cpu_p99_ms']:.3f} ms, its wait "
                       f"for the core p99 {through['wait_p99_ms']:.3f} ms; {through['slow']} requests over "
                       f"{through['threshold_ms']:.2f} ms: {causes or 'none'}; collections per s {through['gc_per_s']}, "
                       f"longest {through['gc_max_ms']} ms, {through['gc_frozen']:,} objects frozen",
                  {"direct": direct, "gateway": through, "added_p50_ms": round(add50, 3),
                   "added_p99_ms": round(add99, 3)})  # fmt: skip

    def scenario_D(self) -> None:
        gw, port, _ = self.gateway("gateway-memory")
        rss: dict[str, float] = {"start": gw.rss_mb()}
        series: list[tuple[int, float]] = [(0, rss["start"])]
        done, first_mark = 0, 10_000 if self.quick else 100_000
        goal = 100_000 if self.quick else 1_000_000
        budget = time.monotonic() + (25 if self.quick else 170)  # keeps make bench under 10 minutes
        cpu0 = gw.serving_cpu_seconds()
        while done < goal and time.monotonic() < budget:
            r = self.wrk_gateway(port, 64, min(20.0, max(2.0, budget - time.monotonic())))
            done += r.requests
            series.append((done, gw.rss_mb()))
            if "mark" not in rss and done >= first_mark:
                rss["mark"], rss["mark_requests"] = series[-1][1], done
        cpu_us = (gw.serving_cpu_seconds() - cpu0) / done * 1e6 if done else 0.0
        rss.setdefault("mark", series[-1][1])
        rss.setdefault("mark_requests", done)
        rss["end"], rss["end_requests"] = series[-1][1], done
        holds = 1000 if self.quick else 5000
        held = self.streams(port, CHAT_PATH, chat_body("bench-hold", stream=True), conns=holds, headers=self.auth,
                            hold=True, rss_pid=gw.pid)  # fmt: skip
        rss["streams"] = held["rss_mb"]
        time.sleep(1.0)
        rss["after_streams"] = gw.rss_mb()
        self.stop(gw)
        per_stream_kb = (rss["streams"] - rss["end"]) * 1024 / held["opened"] if held.get("opened") else 0.0
        span = rss["end_requests"] - rss["mark_requests"]
        per_100k = (rss["end"] - rss["mark"]) / span * 100_000 if span > 0 else 0.0
        self.line("D", f"RSS {rss['start']:.0f} MB after start, {rss['mark']:.0f} MB after {rss['mark_requests']:,} "
                       f"requests, {rss['end']:.0f} MB after {done:,} ({per_100k:+.1f} MB per 100k); "
                       f"{rss['streams']:.0f} MB with {held['opened']:,}/{holds:,} streams open "
                       f"({per_stream_kb:.1f} KB per open stream); "
                       f"{cpu_us:.0f} µs CPU/request (target <= 150 MB, flat to 1M)",
                  {"rss_mb": rss, "requests": done, "series": series, "mb_per_100k": round(per_100k, 2),
                   "holds": held, "quick": self.quick, "cpu_us": round(cpu_us, 1),
                   "kb_per_open_stream": round(per_stream_kb, 1)})  # fmt: skip

    def scenario_W(self) -> None:
        """1 and 2 workers, everything unpinned. ``serve --workers 2`` needs Redis (one shared state
        for every process): with ``REDIS_URL`` set and answering, both run against it; without, only 1."""
        secs = self.secs(6)
        direct = self.wrk_direct(64, self.secs(4), cpus=None)
        out: dict[str, Any] = {"direct": direct.as_dict()}
        texts = []
        redis_url = reachable_redis(os.environ.get("REDIS_URL", ""))
        env = bench_env(REDIS_URL=redis_url) if redis_url else None
        out["redis"] = bool(redis_url)
        for workers in (1, 2):
            if workers > 1 and not redis_url:
                out["skipped"] = ("2 workers skipped: serve --workers 2 needs REDIS_URL (one shared state for "
                                  "every process); set REDIS_URL to a Redis the bench may use")  # fmt: skip
                texts.append(out["skipped"])
                break
            gw, port, _ = self.gateway(f"gateway-w{workers}", workers=workers, cpus=None, env=env)
            self.wrk_gateway(port, 64, 2, cpus=None)
            r = self.wrk_gateway(port, 64, secs, cpus=None, proc=gw)
            out[f"workers_{workers}"] = r.as_dict()
            out[f"rss_workers_{workers}"] = [gw.rss_mb()] + [proc_rss(c) for c in gw.children()]
            texts.append(f"{workers} worker(s) {r.rps:,.0f} req/s (p99 {r.p99_ms:.1f} ms, {r.cpu_us:.0f} µs CPU/req)")
            self.stop(gw)
        where = "state in Redis" if redis_url else "no Redis"
        self.line("W", f"unpinned, wrk and upstream on the same 2 cores, {where}: " + ", ".join(texts)
                  + f"; direct {direct.rps:,.0f} req/s", out)  # fmt: skip

    def scenario_S(self) -> None:
        secs = self.secs(5)
        out: dict[str, Any] = {}
        for server in ("uvicorn", "granian", "daphne"):
            try:
                gw, port, ready = self.gateway(f"gateway-{server}", server=server)
            except RuntimeError as exc:
                out[server] = {"error": str(exc)[:300]}
                continue
            self.wrk_gateway(port, 64, 2)
            r = self.wrk_gateway(port, 64, secs, proc=gw)
            c1 = self.wrk_gateway(port, 1, self.secs(3), proc=gw)
            out[server] = {
                "c64": r.as_dict(),
                "c1": c1.as_dict(),
                "ready_s": round(ready, 2),
                # granian serves from a child process; its parent only supervises.
                "rss_mb": max([gw.rss_mb()] + [proc_rss(c) for c in gw.children()]),
            }
            self.stop(gw)
        text = ", ".join(f"{s} {v['c64']['rps']:,.0f} req/s ({v['c64']['cpu_us']:.0f} µs CPU/req, c1 p50 "
                         f"{v['c1']['p50_ms']:.2f} ms)" if "c64" in v
                         else f"{s} failed" for s, v in out.items())  # fmt: skip
        self.line("S", "full pipeline, one core: " + text, out)

    def scenario_T(self) -> None:
        from .relays import VARIANTS

        secs = self.secs(4)
        out: dict[str, Any] = {}
        wanted = [v.strip() for v in os.environ.get("BENCH_RELAYS", "").split(",") if v.strip()]
        clients = ensure_relay_clients()
        for name, (server, _desc) in VARIANTS.items():
            if wanted and name not in wanted:
                continue
            port = free_port()
            env = bench_env(BENCH_RELAY=name, BENCH_UPSTREAM=f"http://127.0.0.1:{self.up_port}")
            if name in RELAY_CLIENT_VARIANTS:
                env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", str(ROOT)), clients) if p)
            proc = self.spawn(f"relay-{name}", [PY, "-m", "bench.relays", "--server", server, "--port", str(port)],
                              self.gw_cpus, env)  # fmt: skip
            try:
                wait_ok(port, CHAT_PATH, chat_body("m-1-0"), {}, proc=proc, timeout=60)
                wrk(f"http://127.0.0.1:{port}", CHAT_PATH, chat_body("m-1-0"), connections=64, seconds=1,
                    cpus=self.load_cpus)  # fmt: skip
                cpu0 = proc.cpu_seconds()
                r = wrk(f"http://127.0.0.1:{port}", CHAT_PATH, chat_body("m-1-0"), connections=64, seconds=secs,
                        cpus=self.load_cpus)  # fmt: skip
                r.cpu_us = round((proc.cpu_seconds() - cpu0) / max(1, r.requests) * 1e6, 1)
                out[name] = r.as_dict()
            except RuntimeError as exc:
                out[name] = {"error": str(exc)[:300]}
            self.stop(proc)
        out["json"] = micro.json_costs()
        cost = subprocess.run([PY, "-m", "bench.fixtures", "usage-cost"], cwd=ROOT, env=bench_env(),
                              capture_output=True, check=False)  # fmt: skip
        if cost.returncode == 0 and cost.stdout.strip():
            out["usage_rows"] = orjson.loads(cost.stdout.strip().splitlines()[-1])
        text = ", ".join(f"{k} {v['rps']:,.0f} ({v['cpu_us']:.0f} µs)" for k, v in out.items()
                         if isinstance(v, dict) and "rps" in v)  # fmt: skip
        self.line("T", f"bare relays, one core, req/s (CPU/req): {text}; JSON orjson vs json "
                       f"{out['json']['orjson_us']:.1f} vs {out['json']['json_us']:.1f} µs per request+reply; usage record: "
                       f"journal append {out.get('usage_rows', {}).get('append_us_per_record', 0):.1f} µs CPU (serving), "
                       f"ingest {out.get('usage_rows', {}).get('ingest_us_per_record', 0):.0f} µs CPU (ingester)", out)  # fmt: skip

    # -- the run ----------------------------------------------------------------------------
    def run(self, only: list[str]) -> None:
        started = time.monotonic()
        self.results["machine"] = machine()
        self.results["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
        self.prepare()
        if "F" in only:
            self.scenario_F()
        shared = [s for s in ("A", "B", "C", "G", "E") if s in only]
        if shared:
            gw, port, _ = self.gateway()
            for s in shared:
                getattr(self, f"scenario_{s}")(port, gw)
            self.stop(gw)
        for s in ("L", "D", "W", "S", "T"):
            if s in only:
                getattr(self, f"scenario_{s}")()
        self.results["seconds"] = round(time.monotonic() - started, 1)
        self.save()
        print(f"bench: done in {self.results['seconds']:.0f} s", flush=True)


#: Async clients compared as transports in scenario T; not dependencies of the project.
RELAY_CLIENTS = ("pyreqwest==0.15.1", "aiosonic==1.3.3", "niquests==3.21.2")
RELAY_CLIENT_VARIANTS = ("asgi-pyreqwest", "asgi-aiosonic", "asgi-niquests")


def ensure_relay_clients() -> str:
    """Install the compared clients into var/bench-clients (their relays' PYTHONPATH only).

    Not into .venv: niquests brings urllib3-future, which installs over urllib3 there.
    """
    target = ROOT / "var" / "bench-clients"
    if not all((target / name).is_dir() for name in ("pyreqwest", "aiosonic", "niquests")):
        print(f"bench: installing {', '.join(RELAY_CLIENTS)} into {target}", flush=True)
        subprocess.run([PY, "-m", "pip", "install", "-q", "--target", str(target), *RELAY_CLIENTS], check=False)
    return str(target)


def ensure_python_tools() -> None:
    """granian (scenario S) and py-spy (profiles) into this venv, from the bench's own step only."""
    import importlib.util

    missing = [pkg for pkg, ok in (("granian", importlib.util.find_spec("granian") is not None),
                                   ("py-spy", profile.py_spy() is not None)) if not ok]  # fmt: skip
    if missing:
        print(f"bench: installing {', '.join(missing)} into {sys.prefix}", flush=True)
        subprocess.run([PY, "-m", "pip", "install", "-q", *missing], check=False)


def reachable_redis(url: str) -> str:
    """``url`` if a Redis answers there (a PING within a second), else ""."""
    if not url:
        return ""
    try:
        import redis

        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping()
    except Exception as exc:  # any failure means: measure without it
        print(f"bench: REDIS_URL does not answer ({exc}); scenario W runs 1 worker only", flush=True)
        return ""
    return url


def proc_rss(pid: int) -> float:
    from .procs import rss_mb

    return rss_mb(pid)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("Django", "channels", "uvicorn", "uvloop", "httptools", "daphne", "granian", "aiohttp", "httpx",
                "httpx-aiohttp", "orjson"):  # fmt: skip
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "-"
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
            "versions": versions, "wrk": wrk_v[0] if wrk_v else "", "commit": git.strip(),
            "load_before": os.getloadavg()[0]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=ALL, help=f"comma-separated scenarios (default {ALL})")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    only = [s.strip().upper() for s in args.only.split(",") if s.strip()]
    bench = Bench(args)
    atexit.register(bench.stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    for key in ("A", "B", "L", "C", "G", "E", "D", "F", "W", "S", "T"):
        if key in only:
            print(f"  {key}: {DESCRIPTIONS[key]}", flush=True)
    try:
        bench.run(only)
    finally:
        bench.stop_all()
    if args.no_report or args.quick or set(only) != set(ALL.split(",")):
        print("bench: results in var/bench/results.json (docs/benchmarks.md is rewritten by full runs only; "
              "python -m bench.report writes it from the last results)", flush=True)  # fmt: skip
    else:
        report.write(bench.results)
        print("bench: wrote docs/benchmarks.md", flush=True)


if __name__ == "__main__":
    main()
