"""The embedded profile's Celery worker and beat, children of ``serve`` that live and die with it.

``serve`` starts them when the broker is the embedded filesystem one; with an external
broker, worker and beat run as their own processes (docker-compose.yml). A file lock
under ``var/`` makes sure a second ``serve`` on the same ``var/`` starts no second beat.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, one serve per var/ is up to the user
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("llmproxy.jobs")


def _child_setup(parent: int) -> None:  # pragma: no cover - runs in the child between fork and exec
    """Background priority, and on Linux a SIGTERM when ``serve`` dies (even by SIGKILL): never lingers."""
    try:
        os.nice(10)  # requests first: the jobs never compete with serving for the CPU
    except OSError:
        pass
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)


class EmbeddedJobs:
    """A Celery worker and a beat as children of ``serve``, restarted if they die, stopped with it.

    Quiet by design: the children's stdout (banners) goes nowhere and they log warnings
    and errors only, on serve's stderr.
    """

    _WORKER = ("worker", "--pool", "solo", "--hostname", "llmproxy-embedded@%h")
    _QUIET = ("--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat")
    COMMANDS: dict[str, list[str]] = {"worker": [*_WORKER, *_QUIET], "beat": ["beat", "--loglevel", "WARNING"]}
    RESTART_DELAY = 5.0
    #: A child that ran this long before dying is restarted after RESTART_DELAY again, not backed off.
    STABLE_AFTER = 60.0

    def __init__(self, lock: IO[bytes] | None, *, check_every: float = 1.0) -> None:
        self._lock = lock
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._spawned_at: dict[str, float] = {}
        self._guard = threading.Lock()
        self._stopping = threading.Event()
        self._check_every = check_every
        self._thread = threading.Thread(target=self._supervise, name="llmproxy-jobs", daemon=True)

    @classmethod
    def start(cls, var_dir: Path, **kwargs: Any) -> EmbeddedJobs | None:
        """Start worker and beat, or None when another process on this ``var_dir`` runs them already."""
        var_dir.mkdir(parents=True, exist_ok=True)
        lock: IO[bytes] | None = open(var_dir / "celery-jobs.lock", "a+b")  # noqa: SIM115 - held for our lifetime
        if fcntl is not None and lock is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                return None
        jobs = cls(lock, **kwargs)
        with jobs._guard:
            for name in cls.COMMANDS:
                jobs._spawn(name)
        jobs._thread.start()
        return jobs

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items()}

    def command(self, name: str) -> list[str]:
        # Celery warns about running as root at every start; in the embedded profile that is the user's call.
        quiet = ["-W", "ignore:You're running the worker with superuser", "-m", "celery", "--quiet"]
        return [sys.executable, *quiet, "-A", "llmproxy_site", *self.COMMANDS[name]]

    def _spawn(self, name: str) -> None:
        self._procs[name] = subprocess.Popen(
            self.command(name), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=functools.partial(_child_setup, os.getpid()),
        )  # fmt: skip
        self._spawned_at[name] = time.monotonic()

    def _supervise(self) -> None:
        pauses: dict[str, float] = {}
        while not self._stopping.wait(self._check_every):
            for name, proc in list(self._procs.items()):
                if proc.poll() is None:
                    continue
                stable = time.monotonic() - self._spawned_at[name] >= self.STABLE_AFTER
                pause = self.RESTART_DELAY if stable else pauses.get(name, self.RESTART_DELAY)
                log.warning("background jobs: celery %s exited with %s; restarting in %.0f s", name, proc.returncode,
                            pause)  # fmt: skip
                if self._stopping.wait(pause):
                    return
                with self._guard:
                    if not self._stopping.is_set():
                        self._spawn(name)
                pauses[name] = min(pause * 2, 300.0)

    def terminate(self) -> None:
        """Ask both to stop (SIGTERM: a warm shutdown, the running task finishes)."""
        self._stopping.set()
        with self._guard:
            for proc in self._procs.values():
                if proc.poll() is None:
                    proc.terminate()

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        for proc in self._procs.values():
            proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._release()
        return 0

    def kill(self) -> None:
        self._stopping.set()
        with self._guard:
            for proc in self._procs.values():
                if proc.poll() is None:
                    proc.kill()
            for proc in self._procs.values():
                proc.wait()
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None
