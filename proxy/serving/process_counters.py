"""Counters kept in each serving process, shown by /metrics as one view for the node.

The usage counters come from the journal (``metrics``), but some counts exist only in the
serving process that saw them: the limiter's state-store failures (``Limiter.store_errors``).
With ``serve --workers N`` a scrape reaches one process, so each process writes its counts,
at most once a second and only when they changed (never on the request path), to
``<var>/process-counters/<host>-<pid>-<token>.json`` (a temp file renamed over it: a reader
sees the old file or the new one, never half). ``read_node`` sums every file, with the
scraping process's own counts taken live rather than from its file.

A counter must never go backwards, so the files of exited processes are not dropped: under
a file lock, a file of this host whose pid is gone is added to ``totals.json`` (which names
the files it holds, so a crash between the write and the unlink counts nothing twice) and
then deleted. The totals survive restarts of ``serve``. The token keeps a new process that
got a dead one's pid from overwriting that file; the host keeps pids of containers sharing
the var volume (their own pid namespaces) from being judged here. A process killed with
SIGKILL loses what it counted since its last write (at most a second's worth).

No database, no Redis: the state store may be the very thing that is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from django.conf import settings

log = logging.getLogger("llmproxy.metrics")
Labels = tuple[str, ...]
#: Family name -> label values -> count.
Counts = dict[str, dict[Labels, int]]
Source = Callable[[], Mapping[str, Mapping[Labels, int]]]
TOTALS = "totals.json"
#: Seconds between checks for changed counts.
INTERVAL = 1.0


def counters_dir() -> Path:
    """``process-counters/`` in this node's var dir (next to ``usage-journal/``)."""
    return Path(settings.VAR_DIR) / "process-counters"


class CounterFile:
    """One process's counts on disk; ``run`` keeps the file current, ``flush`` writes it now."""

    def __init__(self, directory: Path, source: Source, *, pid: int | None = None) -> None:
        self.directory = directory
        self.source = source
        self.name = f"{socket.gethostname()}-{pid or os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._written: Counts = {}

    def counts(self) -> Counts:
        return {family: {tuple(k): int(v) for k, v in series.items() if v} for family, series in self.source().items()}

    def flush(self) -> bool:
        """Write the counts if they changed since the last write; True when it wrote."""
        counts = {family: series for family, series in self.counts().items() if series}
        if counts == self._written:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_json(self.directory / self.name, {"counts": _dump(counts)})
        self._written = counts
        return True

    async def run(self, interval: float = INTERVAL) -> None:
        """Flush every ``interval`` seconds until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(interval)
                self.flush_logged()
        finally:
            self.flush_logged()

    def flush_logged(self) -> None:
        """``flush``, a write error logged in one line (at exit too: no traceback on the console)."""
        try:
            self.flush()
        except OSError as exc:
            log.warning("could not write this process's counters to %s: %s", self.directory, exc)


def read_node(directory: Path, own: CounterFile | None = None) -> Counts:
    """The node's counts: the totals of exited processes plus every live file (``own``'s counts live)."""
    total: Counts = {}
    if own is not None:
        _add(total, own.counts())
    if not directory.is_dir():
        return total
    with _locked(directory):
        totals = _fold_exited(directory)
        _add(total, totals.counts)
        for path in directory.glob("*.json"):
            if path.name == TOTALS or path.name in totals.names or (own is not None and path.name == own.name):
                continue
            _add(total, _load(_read_json(path).get("counts")))
    return total


class _Totals:
    def __init__(self, counts: Counts, names: set[str]) -> None:
        self.counts = counts
        self.names = names


def _fold_exited(directory: Path) -> _Totals:
    """Add the files of exited processes to the totals, then delete them (caller holds the lock)."""
    raw = _read_json(directory / TOTALS)
    folded = {n for n in raw.get("files", ()) if isinstance(n, str) and (directory / n).exists()}
    totals = _Totals(_load(raw.get("counts")), folded)
    host = socket.gethostname()
    exited = [p for p in directory.glob(f"{host}-*.json*") if p.name not in folded and not _alive(_pid_of(p.name))]
    new = [p for p in exited if p.suffix == ".json"]
    if new:
        for path in new:
            _add(totals.counts, _load(_read_json(path).get("counts")))
        totals.names |= {p.name for p in new}
        _write_json(directory / TOTALS, {"counts": _dump(totals.counts), "files": sorted(totals.names)})
    for path in [*exited, *(directory / n for n in folded)]:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return totals


def _pid_of(name: str) -> int:
    try:
        return int(name.rsplit("-", 2)[1])
    except (IndexError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _add(into: Counts, counts: Counts) -> None:
    for family, series in counts.items():
        target = into.setdefault(family, {})
        for key, n in series.items():
            target[key] = target.get(key, 0) + n


def _dump(counts: Counts) -> dict[str, list[list[Any]]]:
    return {family: [[*k, n] for k, n in sorted(series.items())] for family, series in counts.items()}


def _load(raw: Any) -> Counts:
    out: Counts = {}
    if not isinstance(raw, dict):
        return out
    for family, rows in raw.items():
        for *key, n in rows if isinstance(rows, list) else ():
            if isinstance(n, int) and all(isinstance(k, str) for k in key):
                series = out.setdefault(str(family), {})
                series[tuple(key)] = series.get(tuple(key), 0) + n
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)
