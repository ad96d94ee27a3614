"""The usage ingester: journal segments -> ``UsageRecord`` rows, exactly once.

One ingester per journal directory (an ``flock`` on ``ingest.lock``; a second one waits
as a standby). Each pass reads up to ``batch`` records past the watermark, inserts them
in one transaction (``COPY`` into a temporary table, then ``INSERT ... ON CONFLICT
(request_id) DO NOTHING`` on PostgreSQL; ``executemany`` of the same statement on
SQLite), and only after the commit moves the watermark and deletes consumed segments. A
crash between commit and watermark replays the batch; the unique ``request_id`` makes the
replay a no-op. The request counters behind ``/metrics`` are kept in the watermark file
with the positions, so they count each record once too, for every serving process of the
node together.

The watermark is a file next to the segments rather than a database row: it describes
files that exist only on this node's disk, so it lives and dies with them (a new var dir
starts from nothing, a restored database does not point at segments long gone), and it
needs no node identity. What a database row would add, atomicity with the insert, the
unique ``request_id`` already gives.

While the database is unreachable the ingester retries with backoff and the journal
grows on disk; past ``usage.journal_max_mb`` it writes the ``journal-full`` flag (and
logs why), on which the serving processes answer 503 instead of taking requests they
could not record. Nothing is ever dropped.
"""

from __future__ import annotations

import fcntl
import logging
import time
from pathlib import Path
from typing import IO, Any, Protocol

from django.db import DatabaseError, InterfaceError, connection, transaction

from llmproxy.journal import FULL_FLAG, JournalReader
from proxy.models import UsageRecord
from proxy.serving.metrics import Metrics

from .usage_rows import columns, row_builder

log = logging.getLogger("llmproxy.ingest")
BATCH = 20_000
POLL = 0.2
MAX_BACKOFF = 10.0


class Stop(Protocol):
    """What ``Ingester.run`` waits on: a ``threading.Event`` or a ``stop_flag.SignalStop``."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Ingester:
    def __init__(self, directory: str | Path, *, quota_bytes: int, batch: int = BATCH, poll: float = POLL) -> None:
        self.reader = JournalReader(directory)
        self.quota_bytes = quota_bytes
        self.batch = batch
        self.poll = poll
        self.metrics = Metrics.from_state(self.reader.state)
        self.failures = 0
        self._lock: IO[bytes] | None = None
        self._full = (self.reader.directory / FULL_FLAG).exists()

    def acquire(self, *, wait: bool = True) -> bool:
        """Become this journal's one ingester; with ``wait`` block until the holder goes."""
        self._lock = open(self.reader.directory / "ingest.lock", "a+b")  # noqa: SIM115 - held while we run
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            return False
        self.reader = JournalReader(self.reader.directory)  # the holder may have moved the watermark
        self.metrics = Metrics.from_state(self.reader.state)
        return True

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def run_once(self) -> int:
        """One pass: read, insert, commit, move the watermark. The number of records read."""
        batch = self.reader.read(self.batch)
        if batch.records:
            insert(batch.records)
            for record in batch.records:
                self.metrics.observe_record(record)
        if batch.records or batch.finished or batch.positions:
            self.reader.commit(batch, self.metrics.state())
        return len(batch.records)

    def drain(self) -> int:
        """Passes until nothing new is left (what open segments hold so far included)."""
        total = 0
        while n := self.run_once():
            total += n
        return total

    def run(self, stop: Stop) -> None:
        """Ingest until ``stop`` is set, then drain what the stopped servers wrote."""
        while not stop.is_set():
            delay = self.poll
            try:
                n = self.run_once()
                if self.failures:
                    log.warning("usage ingester: database back after %d failed attempts", self.failures)
                self.failures = 0
                if n >= self.batch:
                    delay = 0.0
            except (DatabaseError, InterfaceError, OSError) as exc:
                self.failures += 1
                delay = min(MAX_BACKOFF, self.poll * 2**self.failures)
                log.error("usage ingester: insert failed (%s); %d bytes wait in the journal, retrying in %.1f s",
                          exc, self.reader.backlog_bytes(), delay)  # fmt: skip
                connection.close()
            self.check_quota()
            stop.wait(delay)
        self.final_drain(attempts=1 if self.failures else 3)

    def final_drain(self, attempts: int = 3) -> None:
        """Write what is left; a database still down after ``attempts`` leaves it in the journal."""
        for i in range(attempts):
            try:
                n = self.drain()
                log.info("usage ingester: stopped after writing the last %d records", n)
                return
            except (DatabaseError, InterfaceError) as exc:
                log.error("usage ingester: final write failed (%s); the journal keeps the records", exc)
                connection.close()
                if i + 1 < attempts:
                    time.sleep(0.5 * 2**i)

    def check_quota(self) -> None:
        backlog = self.reader.backlog_bytes()
        flag = self.reader.directory / FULL_FLAG
        if backlog > self.quota_bytes and not self._full:
            log.error("usage journal backlog %d MB is over usage.journal_max_mb (%d MB): the database is not "
                      "taking records; serving answers 503 until the backlog drains",
                      backlog // 2**20, self.quota_bytes // 2**20)  # fmt: skip
            flag.touch()
            self._full = True
        elif self._full and backlog <= self.quota_bytes * 0.9:
            flag.unlink(missing_ok=True)
            self._full = False
            log.warning(
                "usage journal backlog %d MB is under the quota again: serving takes requests", backlog // 2**20
            )


def insert(records: list[dict[str, Any]]) -> None:
    """Insert records in one transaction, skipping request ids already stored."""
    table = UsageRecord._meta.db_table
    names = [str(f.column) for f in columns()]
    cols = ", ".join(connection.ops.quote_name(n) for n in names)
    on_conflict = f"ON CONFLICT ({connection.ops.quote_name('request_id')}) DO NOTHING"
    with transaction.atomic():
        if connection.vendor == "postgresql":
            build = row_builder(connection, adapt=False)
            with connection.cursor() as cursor:
                raw = cursor.cursor
                raw.execute(f"CREATE TEMP TABLE IF NOT EXISTS usage_in AS SELECT {cols} FROM {table} WITH NO DATA")
                raw.execute("TRUNCATE usage_in")
                with raw.copy(f"COPY usage_in ({cols}) FROM STDIN") as copy:
                    for record in records:
                        copy.write_row(build(record))
                raw.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM usage_in {on_conflict}")
        else:
            build = row_builder(connection, adapt=True)
            marks = ", ".join(["%s"] * len(names))
            with connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) {on_conflict}",
                                   [build(r) for r in records])  # fmt: skip


def drain_journal(directory: str | Path, quota: int) -> None:
    """Write what is left in the journal now, unless another ingester holds it (``serve``'s last step)."""
    ingester = Ingester(directory, quota_bytes=quota)
    if ingester.acquire(wait=False):
        try:
            ingester.final_drain()
        finally:
            ingester.release()
