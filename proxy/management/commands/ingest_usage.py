"""``ingest_usage``: write the node's usage journal into the database (``serve`` runs it as a child)."""

from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from proxy.jobs.stop_flag import SignalStop
from proxy.jobs.usage_ingest import Ingester
from proxy.serving import heap
from proxy.serving.usage_journal import journal_dir, quota_bytes


class Command(BaseCommand):
    help = "Ingest the usage journal of this var dir into the database until SIGTERM (or once with --drain)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--drain", action="store_true", help="Write what the journal holds now, then exit.")

    def handle(self, *args: Any, **opts: Any) -> None:
        ingester = Ingester(journal_dir(), quota_bytes=quota_bytes())
        if opts["drain"]:
            if not ingester.acquire(wait=False):
                self.stderr.write("another ingester holds this journal; nothing done")
                return
            self.stdout.write(f"wrote {ingester.drain()} usage records")
            return
        stop = SignalStop()  # not a threading.Event: its set() can deadlock inside a signal handler
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if not ingester.acquire(wait=False):
            self.stdout.write("usage ingester: another process ingests this journal; standing by")
            while not stop.is_set() and not ingester.acquire(wait=False):
                stop.wait(1.0)
            if stop.is_set():
                return
        heap.settle()
        try:
            ingester.run(stop)
        finally:
            ingester.release()
