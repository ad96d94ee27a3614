"""The usage journal: append-only segment files a serving process writes and an ingester tails.

A record is one line, written with one ``os.write``::

    b"<crc32 of payload, 8 hex digits> <orjson payload>\\n"

orjson never emits a raw newline, so a line is a record. A checksum that does not match,
or a last line without its newline in a segment nobody writes any more, is a torn or
damaged record (a machine crash without ``fsync``): the reader logs it and skips it.

Every writer (one per serving process) owns its segments: ``<writer>-<seq>.jnl`` with
``writer = <ms since epoch>-<pid>``. A writer holds an exclusive ``flock`` on its current
segment; the kernel drops the lock when the process closes the file, rotates, or dies
(``kill -9`` included). A segment the reader can lock is *sealed*: nothing will be
appended to it again, so once it is consumed up to its end it can be deleted. Segments
are created under a temporary name, locked, then renamed, so a reader never sees an
unlocked segment that is still being set up.

The reader's position is a watermark file (``watermark.json``: offset per segment, plus
an optional state blob the caller keeps consistent with it), replaced atomically. The
caller commits a batch to its store first and only then calls ``JournalReader.commit``;
a crash in between replays the batch, which the store must absorb (unique request ids).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("llmproxy.journal")

SUFFIX = ".jnl"
WATERMARK = "watermark.json"
#: Written by the ingester while the backlog is over its quota; writers refuse work meanwhile.
FULL_FLAG = "journal-full"
SEGMENT_BYTES = 16 * 1024 * 1024
SEGMENT_SECONDS = 300.0


def encode(record: Any) -> bytes:
    """One journal line for a JSON-serialisable record (dataclasses included)."""
    payload = orjson.dumps(record)
    return b"%08x %b\n" % (zlib.crc32(payload), payload)


def decode(line: bytes) -> Any:
    """The record of one line (without its newline); ``ValueError`` if it is damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        raise ValueError("not a journal line")
    payload = line[9:]
    if int(line[:8], 16) != zlib.crc32(payload):
        raise ValueError("checksum mismatch")
    return orjson.loads(payload)


class JournalWriter:
    """Appends records to this process's current segment; safe to share between threads.

    ``fsync``: a background thread syncs the segment every ``fsync_interval`` seconds while
    there are unsynced writes (one ``fsync`` for the whole group). Without it a record is
    in the page cache when ``append`` returns: it survives the death of every process, not
    a crash of the machine.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        fsync: bool = False,
        fsync_interval: float = 0.01,
        segment_bytes: int = SEGMENT_BYTES,
        segment_seconds: float = SEGMENT_SECONDS,
    ) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._lock = threading.Lock()
        self._fd = -1
        self._pid = 0
        self._seq = 0
        self._writer = ""
        self._size = 0
        self._opened = 0.0
        self._dirty = threading.Event()
        self._closed = False
        self._syncer: threading.Thread | None = None
        self._full = False
        self._full_checked = -1.0
        self.path: Path | None = None

    def full(self) -> bool:
        """The ingester flagged the backlog over its quota (looked up at most once a second)."""
        now = time.monotonic()
        if now - self._full_checked >= 1.0:
            self._full_checked = now
            self._full = os.path.exists(self.directory / FULL_FLAG)
        return self._full

    def append(self, record: Any) -> None:
        """Write one record: one ``os.write`` of one line (a few microseconds)."""
        line = encode(record)
        with self._lock:
            if self._fd < 0 or self._pid != os.getpid() or self._due():
                self._rotate()
            n = os.write(self._fd, line)
            while n < len(line):  # a short write only happens on a full disk; finish or raise
                n += os.write(self._fd, line[n:])
            self._size += len(line)
        if self.fsync:
            self._dirty.set()

    def _due(self) -> bool:
        return self._size >= self.segment_bytes or (
            self._size > 0 and time.monotonic() - self._opened >= self.segment_seconds
        )

    def _rotate(self) -> None:
        if self._fd >= 0 and self._pid == os.getpid():
            self._close_fd()
        elif self._pid != os.getpid():  # a forked child: the parent's segment is not ours
            if self._fd >= 0:
                os.close(self._fd)  # the parent's lock stays: it holds its own descriptor
            self._fd, self._seq, self._writer = -1, 0, ""
        self._pid = os.getpid()
        if not self._writer:
            # Containers sharing one volume may reuse pids: a random tail keeps the names apart.
            self._writer = f"{time.time_ns() // 1_000_000:013d}-{self._pid}-{os.urandom(3).hex()}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"{self._writer}-{self._seq:06d}{SUFFIX}"
        tmp = self.directory / f".{name}.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, self.directory / name)
        self._fd, self._size, self._opened = fd, 0, time.monotonic()
        self.path = self.directory / name
        if self.fsync and self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_loop, name="llmproxy-journal-fsync", daemon=True)
            self._syncer.start()

    def _close_fd(self) -> None:
        if self.fsync:
            os.fsync(self._fd)
        os.close(self._fd)  # releases the flock: the segment is sealed
        self._fd = -1

    def _sync_loop(self) -> None:
        while not self._closed:
            self._dirty.wait()
            time.sleep(self.fsync_interval)  # gather the group
            self._dirty.clear()
            with self._lock:
                fd = os.dup(self._fd) if self._fd >= 0 else -1
            if fd >= 0:  # outside the lock: an fsync may take milliseconds, appends go on meanwhile
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def close(self) -> None:
        """Seal the current segment (the next ``append`` opens a new one)."""
        with self._lock:
            if self._fd >= 0 and self._pid == os.getpid():
                self._close_fd()
            self._fd = -1


@dataclass(slots=True)
class Segment:
    name: str
    path: Path
    sealed: bool


@dataclass(slots=True)
class Batch:
    """Records read past the watermark; ``commit`` it once they are stored."""

    records: list[Any] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    #: Sealed segments this batch reads to their end: deleted on commit.
    finished: list[str] = field(default_factory=list)
    damaged: int = 0


def read_state(directory: str | Path) -> Any:
    """The state blob last committed with the watermark (None before the first commit)."""
    try:
        return orjson.loads((Path(directory) / WATERMARK).read_bytes()).get("state")
    except FileNotFoundError:
        return None


def backlog_bytes(directory: str | Path) -> int:
    """Journaled bytes past the committed watermark, over every segment (for a gauge)."""
    path = Path(directory)
    try:
        positions = orjson.loads((path / WATERMARK).read_bytes()).get("positions", {})
    except FileNotFoundError:
        positions = {}
    total = 0
    for seg in path.glob(f"*{SUFFIX}"):
        try:
            total += max(0, seg.stat().st_size - int(positions.get(seg.name, 0)))
        except FileNotFoundError:
            pass
    return total


def is_sealed(path: Path) -> bool:
    """No writer holds the segment (closed, rotated, or its process died)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also drops our shared lock
    return True


class JournalReader:
    """Reads every segment of a journal directory from the durable watermark on."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.positions: dict[str, int] = {}
        self.state: Any = None
        self._load()

    def _load(self) -> None:
        try:
            data = orjson.loads((self.directory / WATERMARK).read_bytes())
        except FileNotFoundError:
            return
        self.positions = {str(k): int(v) for k, v in data.get("positions", {}).items()}
        self.state = data.get("state")

    def segments(self) -> list[Segment]:
        """Every segment, oldest writer first; the seal is checked before anything is read."""
        names = sorted(p.name for p in self.directory.glob(f"*{SUFFIX}") if not p.name.startswith("."))
        return [Segment(n, self.directory / n, is_sealed(self.directory / n)) for n in names]

    def backlog_bytes(self) -> int:
        """Bytes not yet committed, over every segment."""
        return backlog_bytes(self.directory)

    def read(self, max_records: int = 10_000) -> Batch:
        """The next records past the watermark, without moving it."""
        batch = Batch()
        for seg in self.segments():
            if len(batch.records) >= max_records:
                break
            start = self.positions.get(seg.name, 0)
            end, done = self._read_segment(seg, start, max_records, batch)
            if end != start:
                batch.positions[seg.name] = end
            if done:
                batch.finished.append(seg.name)
        return batch

    def _read_segment(self, seg: Segment, start: int, max_records: int, batch: Batch) -> tuple[int, bool]:
        try:
            with open(seg.path, "rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return start, True
        pos = start
        for line, nxt in _lines(data, start):
            if len(batch.records) >= max_records:
                return pos, False
            try:
                batch.records.append(decode(line))
            except ValueError as exc:
                batch.damaged += 1
                log.warning("usage journal %s: skipping a damaged record at byte %d (%s)", seg.name, pos, exc)
            pos = nxt
        tail = start + len(data) - pos
        if seg.sealed and tail:
            batch.damaged += 1
            log.warning("usage journal %s: skipping a torn last record (%d bytes at byte %d)", seg.name, tail, pos)
            pos += tail
        return pos, seg.sealed

    def commit(self, batch: Batch, state: Any = None) -> None:
        """Make the batch's positions (and ``state``) durable, then delete finished segments.

        A finished segment keeps its end position in this watermark: a crash before the
        delete finds it consumed (and deletes it then), never replays it.
        """
        existing = {p.name for p in self.directory.glob(f"*{SUFFIX}")}
        positions = {k: v for k, v in {**self.positions, **batch.positions}.items() if k in existing}
        self._write_watermark(positions, state)
        self.positions, self.state = positions, state
        for name in batch.finished:
            (self.directory / name).unlink(missing_ok=True)

    def _write_watermark(self, positions: dict[str, int], state: Any) -> None:
        path = self.directory / WATERMARK
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"positions": positions, "state": state}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _lines(data: bytes, base: int) -> Iterator[tuple[bytes, int]]:
    """(line without newline, absolute offset after it) for each complete line."""
    i = 0
    while True:
        j = data.find(b"\n", i)
        if j < 0:
            return
        yield data[i:j], base + j + 1
        i = j + 1
