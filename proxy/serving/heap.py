"""The garbage collector, set for a long-running server once start-up is done.

After ``django.setup()`` and the first snapshot a serving process holds ~130,000 tracked
objects (modules, classes, the ORM's metadata, the snapshot) that live as long as the
process. CPython's full collection walks all of them: ~80 ms of CPU each time on this
project's bench machine, which stalls every request in flight (docs/benchmarks.md, "the
latency tail"). ``settle()`` collects once, then moves everything alive into the
permanent generation (``gc.freeze()``), so later collections only walk what was allocated
since; and it raises the youngest generation's threshold, so a request's short-lived
containers are freed by reference counting long before a collection would look at them.
"""

from __future__ import annotations

import gc

#: Allocations (net of frees) before a young collection; CPython's default is 700.
GEN0_THRESHOLD = 20_000
#: Young collections per middle one, middle ones per full one (CPython: 10 and 10).
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 50


_settled = False


def settle() -> int:
    """Collect, freeze what survived, set the thresholds (once per process); the number frozen."""
    global _settled
    if _settled:
        return gc.get_freeze_count()
    _settled = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    return gc.get_freeze_count()
