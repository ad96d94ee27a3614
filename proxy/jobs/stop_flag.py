"""A stop flag that a signal handler may set.

``threading.Event.set`` takes the event's lock. A Python signal handler runs on the main
thread between two bytecodes, so when the signal lands while that thread is inside the
event's own ``wait``, or inside an earlier handler's ``set`` (a second SIGTERM right after
the first), ``set`` waits for a lock its own thread holds, forever. Seen in CI: an
ingester stuck in ``Event.set`` long after its ``serve`` was killed, holding a database
session. This flag is a plain attribute, and ``wait`` sleeps in short slices instead of
blocking on a lock; ``time.sleep`` resumes after a handler, so a set flag is seen within
one slice.
"""

from __future__ import annotations

import time

#: Seconds per sleep while waiting: how late a stop is seen, at most.
SLICE = 0.05


class SignalStop:
    """``is_set`` / ``set`` / ``wait`` as ``threading.Event``'s, safe to ``set`` from a signal handler."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while not self._set:
            left = SLICE if end is None else end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, SLICE))
        return self._set
