"""Bench-only tracer, loaded by a Python process started with bench/trace on PYTHONPATH.

With ``BENCH_TRACE=<dir>`` set, the process writes ``<dir>/trace-<pid>.json`` on SIGUSR2
and at exit: every garbage collection (start, duration, generation), every stall of the
event loop (a 1 ms heartbeat that ran late: when, how late, and how much CPU the main
thread got meanwhile), and what the main thread was running during a stall (a watchdog
thread samples its stack when the heartbeat is 2 ms overdue). ``bench.tail`` lines these
up with the slow requests it timed. Without ``BENCH_TRACE`` nothing here runs.
"""

from __future__ import annotations

import os

if os.environ.get("BENCH_TRACE") and "serve" in __import__("sys").argv[1:2]:
    import atexit
    import gc
    import signal
    import sys
    import threading
    import time

    _out = os.environ["BENCH_TRACE"]
    _gcs: list[tuple[float, float, int]] = []
    _stalls: list[tuple[float, float, float]] = []
    _stacks: list[tuple[float, str]] = []
    _gc_start = [0.0]
    _beat = [0.0]
    _mono, _thread = time.monotonic, time.thread_time
    _main = threading.main_thread().ident

    def _on_gc(phase: str, info: dict[str, int]) -> None:
        if threading.get_ident() != _main:
            return
        if phase == "start":
            _gc_start[0] = _mono()
        else:
            _gcs.append((_gc_start[0], _mono() - _gc_start[0], info["generation"]))

    gc.callbacks.append(_on_gc)

    def _heartbeat(loop: object) -> None:
        state = {"due": _mono() + 0.001, "cpu": _thread()}

        def beat() -> None:
            now, cpu = _mono(), _thread()
            late = now - state["due"]
            if late > 0.0005:
                _stalls.append((state["due"], late, cpu - state["cpu"]))
            _beat[0] = now
            state["due"], state["cpu"] = now + 0.001, cpu
            loop.call_at(state["due"], beat)  # type: ignore[attr-defined]

        loop.call_soon(beat)  # type: ignore[attr-defined]

    def _summary(frame: object) -> str:
        names = []
        while frame is not None and len(names) < 40:
            code = frame.f_code  # type: ignore[attr-defined]
            names.append(f"{code.co_qualname} ({os.path.basename(code.co_filename)})")
            frame = frame.f_back  # type: ignore[attr-defined]
        skip = (
            "run_forever",
            "Runner.run",
            "asyncio_run",
            "_run_once",
            "Handle._run",
            "<module>",
            "handle",
            "execute",
            "run_from_argv",
            "Server.run",
            "(main.py)",
            "(__init__.py)",
            "(base.py)",
        )
        keep = [n for n in names if not any(s in n for s in skip)]
        return " < ".join(keep[:6]) or " < ".join(names[:4])

    def _watchdog() -> None:
        while True:
            time.sleep(0.001)
            last = _beat[0]
            if last and _mono() - last > 0.002:
                frame = sys._current_frames().get(_main)
                if frame is not None:
                    _stacks.append((_mono(), _summary(frame)))

    try:
        import uvloop

        _new = uvloop.new_event_loop

        def _traced_loop() -> object:
            loop = _new()
            _heartbeat(loop)
            return loop

        uvloop.new_event_loop = _traced_loop  # type: ignore[assignment]
        threading.Thread(target=_watchdog, name="bench-trace", daemon=True).start()
    except ImportError:
        pass

    def _dump(*_: object) -> None:
        import json

        with open(os.path.join(_out, f"trace-{os.getpid()}.json"), "w") as f:
            json.dump(
                {
                    "pid": os.getpid(),
                    "argv": sys.argv[:3],
                    "gc": _gcs,
                    "stalls": _stalls,
                    "stacks": _stacks,
                    "frozen": gc.get_freeze_count(),
                    "threads": {t.native_id: t.name for t in threading.enumerate()},
                    "threshold": gc.get_threshold(),
                },
                f,
            )

    atexit.register(_dump)
    signal.signal(signal.SIGUSR2, _dump)
