"""``manage.py ingest_usage`` as a child of ``serve``: restarted if it dies, stopped last.

``serve`` starts it in both profiles (``--no-ingest`` when the ingester runs as its own
service, as in docker-compose.yml). It dies with ``serve`` even on ``kill -9`` (a SIGTERM
from the kernel, on which it writes what it has read and exits), and on a normal stop it
is stopped only after the servers have drained, so it writes every record they journaled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger("llmproxy.ingest")
BASE_DIR = Path(__file__).resolve().parents[2]
RESTART_DELAY = 1.0
#: The ingester yields the CPU to the serving processes: its batches (~55 µs of CPU per
#: record, every 0.2 s) otherwise preempt a request on a shared core for 10-20 ms.
#: SCHED_BATCH keeps its wake-ups from preempting a running request; niceness 5 gives it
#: a quarter of a core that serving saturates (weight 335 against 1,024), more than the
#: ~20% it needs there (59 µs per record against ~250 µs per request), so it keeps up with
#: INTERFACE.md's "in the database within 5 s while serving", and all of any idle core.
NICE = 5


def _child_setup(parent: int) -> None:  # pragma: no cover - runs in the child between fork and exec
    os.nice(NICE)
    if hasattr(os, "SCHED_BATCH"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)


class IngesterChild:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="llmproxy-ingest", daemon=True)

    @classmethod
    def start(cls) -> IngesterChild:
        child = cls()
        with child._guard:
            child._spawn()
        child._thread.start()
        return child

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _spawn(self) -> None:
        parent = os.getpid()
        self._proc = subprocess.Popen(
            [sys.executable, str(BASE_DIR / "manage.py"), "ingest_usage"], stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=lambda: _child_setup(parent),
        )  # fmt: skip

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            proc = self._proc
            if proc is None or proc.poll() is None:
                continue
            log.warning("usage ingester exited with %s; restarting in %.0f s", proc.returncode, RESTART_DELAY)
            if self._stopping.wait(RESTART_DELAY):
                return
            with self._guard:
                if not self._stopping.is_set():
                    self._spawn()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (it writes everything it can still read, then exits); SIGKILL after ``timeout``."""
        self._stopping.set()
        with self._guard:
            proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("usage ingester did not stop within %.0f s; killed (the journal keeps what it did not write)",
                      timeout)  # fmt: skip
            proc.kill()
            return proc.wait()
