"""The ingester stops on SIGTERM however many arrive at once.

Its handler used to call ``threading.Event.set``, which takes the event's lock; a second
signal landing inside the first handler's ``set`` waited for that lock on the same
thread forever, and the ingester outlived its ``serve`` holding a database session (seen
in CI's pass 2, which then could not drop its test database).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from proxy.jobs.stop_flag import SignalStop

from .conftest import Child, child_env, until

pytestmark = pytest.mark.django_db(transaction=True)


def _catches(pid: int, sig: int) -> bool:
    """Whether the process has installed a handler for ``sig`` (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_the_ingester_exits_on_a_burst_of_sigterms(tmp_path: Path) -> None:
    for _ in range(3):  # the window is a few microseconds per signal: try it more than once
        child = Child([sys.executable, "manage.py", "ingest_usage"], child_env(var_dir=tmp_path)).start()
        try:
            pid = child.pid
            until(lambda pid=pid: _catches(pid, signal.SIGTERM), 30, what="the ingester's SIGTERM handler")
            time.sleep(0.3)  # into its run loop: waiting on the stop flag between polls
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and child.alive():
                os.kill(pid, signal.SIGTERM)
            assert child.proc is not None
            # It ends (0), or a late signal meets the interpreter's shutdown, which has put the
            # default handlers back (-SIGTERM); what must not happen is that it never ends.
            assert child.proc.wait(20) in (0, -signal.SIGTERM), child.output()
        finally:
            child.stop(signal.SIGKILL)


def test_a_signal_handler_sets_the_stop_flag_while_it_is_waited_on() -> None:
    stop = SignalStop()
    assert stop.wait(0.01) is False and not stop.is_set()
    old = signal.signal(signal.SIGALRM, lambda *_: (stop.set(), stop.set()))  # twice: re-entry is harmless
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        started = time.monotonic()
        assert stop.wait(10) is True
        assert time.monotonic() - started < 2  # seen within a slice, not at the timeout
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
