"""The latency histogram's fixed buckets, shared by the rollup job and the reports.

Bucket 0 holds 0 ms; bucket ``i`` holds ``BOUNDS[i-1] <= ms < BOUNDS[i]``; the last holds
everything from ``BOUNDS[-1]`` up. Bounds grow by 10 % from 1 ms to an hour, so a
percentile read from the buckets (their upper bound) is at most 10 % above the exact one.
"""

from __future__ import annotations

import bisect
import math


def _bounds() -> tuple[int, ...]:
    out = [1]
    while out[-1] < 3_600_000:
        out.append(max(out[-1] + 1, round(out[-1] * 1.1)))
    return tuple(out)


BOUNDS = _bounds()
#: How many buckets there are.
SIZE = len(BOUNDS) + 1


def bucket_of(ms: int) -> int:
    return bisect.bisect_right(BOUNDS, ms)


def upper(bucket: int) -> int:
    """The highest whole millisecond in ``bucket`` (the last bucket: its lower bound)."""
    return BOUNDS[bucket] - 1 if bucket < len(BOUNDS) else BOUNDS[-1]


def percentile(counts: dict[int, int], p: float) -> int | None:
    """Nearest-rank ``p`` (0..1) of a histogram {bucket: count}, as the bucket's upper bound."""
    total = sum(counts.values())
    if not total:
        return None
    rank = max(1, math.ceil(p * total - 1e-9))
    seen = 0
    for b in sorted(counts):
        seen += counts[b]
        if seen >= rank:
            return upper(b)
    return upper(max(counts))
