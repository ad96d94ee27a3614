"""``serve``: the ASGI server (uvicorn by default; granian or daphne on request) plus background jobs.

uvicorn (uvloop + httptools) is the default: granian measured no consistently cheaper for
the full pipeline (docs/benchmarks.md) and is not a dependency (``pip install granian``
to use it); daphne stays supported but costs 40-76% more CPU per request.

The embedded profile also starts a Celery worker with beat against the embedded broker,
unless ``--no-jobs``; with ``REDIS_URL``/``CELERY_BROKER_URL`` set, run the worker and
beat as their own processes (docker-compose.yml) and serve with ``--no-jobs``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from proxy.configsync.config_file import server_address
from proxy.jobs.embedded import EmbeddedJobs
from proxy.jobs.ingest_child import IngesterChild
from proxy.jobs.schedules import setup_schedules
from proxy.jobs.usage_ingest import drain_journal
from proxy.serving.instances import claim_serving
from proxy.serving.usage_journal import journal_dir, quota_bytes

ASGI_APP = "llmproxy_site.asgi:application"
log = logging.getLogger("llmproxy.serve")
#: SIGTERM: in-flight requests get this long to finish (INTERFACE.md section 9).
DRAIN_SECONDS = 30
#: What a second instance on one database without Redis is told (INTERFACE.md sections 10, 13).
LONE_LIMITS = (
    "another serve instance already serves this database without REDIS_URL: each instance keeps its own "
    "rate limits, budgets and cooldowns, so a key gets its limits once per instance. "
    "Set REDIS_URL on every instance to share them."
)


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


class Command(BaseCommand):
    help = "Serve llmproxy (LLM endpoints, admin, API) on one port."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument(
            "--workers", type=int, default=1, help="Server processes (uvicorn, granian); one per core is the rule."
        )
        parser.add_argument("--server", choices=["uvicorn", "granian", "daphne"], default="uvicorn")
        parser.add_argument("--no-jobs", action="store_true", help="Do not start the Celery worker and beat.")
        parser.add_argument(
            "--no-ingest", action="store_true", help="Do not start the usage ingester (it runs as its own service)."
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        host, port = self._address(opts)
        if opts["workers"] > 1 and not settings.REDIS_URL:
            # Without a shared store each process would keep its own limits, budgets and
            # cooldowns: a 60 RPM key would get 60 per process. Refused rather than wrong.
            raise CommandError(
                f"--workers {opts['workers']} needs REDIS_URL: without Redis every server process keeps its own "
                "rate limits, budgets and cooldowns, so a key would get its limits once per process. "
                "Set REDIS_URL (several processes then share one state), or serve with --workers 1."
            )
        if not settings.REDIS_URL and claim_serving() is False:
            log.warning(LONE_LIMITS)
        jobs = None
        if not opts["no_jobs"] and os.environ.get("LLMPROXY_SERVE_JOBS", "auto") != "off":
            jobs = self._start_jobs()
        ingester = None if opts["no_ingest"] else IngesterChild.start()
        if (jobs is not None or ingester is not None) and threading.current_thread() is threading.main_thread():
            # uvicorn shuts down on SIGTERM, restores this handler and re-raises the signal; exiting
            # through SystemExit (not the default, an instant death) lets the finally below stop the children.
            signal.signal(signal.SIGTERM, _exit_quietly)
        self.stdout.write(f"llmproxy serving on http://{host}:{port} ({opts['server']}, {opts['workers']} worker(s))")
        self.stdout.flush()
        try:
            if opts["server"] == "daphne":
                self._daphne(host, port)
            elif opts["server"] == "granian":
                self._granian(host, port, opts["workers"])
            else:
                import uvicorn

                uvicorn.run(
                    ASGI_APP,
                    host=host,
                    port=port,
                    workers=opts["workers"] if opts["workers"] > 1 else None,
                    lifespan="on",
                    loop="auto",
                    http="auto",
                    log_level="warning",
                    access_log=False,
                    # X-Forwarded-For is read only from clients.trusted_proxies (llmproxy.throttle),
                    # not from whatever uvicorn trusts by default (127.0.0.1).
                    proxy_headers=False,
                    # No logging set-up of uvicorn's own: its loggers reach the site's handlers,
                    # which scrub secrets and take logging.format.
                    log_config=None,
                    timeout_graceful_shutdown=DRAIN_SECONDS,
                )
        finally:
            if jobs is not None:
                jobs.terminate()
            if ingester is not None:  # last: the servers have drained, their segments are sealed
                ingester.stop()
                # What the child could not write (stopped while still starting, say) is written here.
                drain_journal(journal_dir(), quota_bytes())
            if jobs is not None:
                try:
                    jobs.wait(15)
                except subprocess.TimeoutExpired:
                    jobs.kill()

    def _address(self, opts: dict[str, Any]) -> tuple[str, int]:
        host, port = server_address()
        return opts["host"] or host, opts["port"] or port

    def _start_jobs(self) -> Any:
        """The embedded profile's Celery worker + beat (children that die with serve), or None.

        With an external broker, worker and beat are their own processes (docker-compose.yml).
        Returns an object with ``terminate()``, ``wait(timeout)`` and ``kill()``.
        """
        if not settings.CELERY_EMBEDDED_BROKER:
            self.stdout.write("Background jobs: run 'celery -A llmproxy_site worker' and 'beat' (broker is external).")
            return None
        setup_schedules()
        jobs = EmbeddedJobs.start(Path(settings.VAR_DIR))
        if jobs is None:
            self.stdout.write("Background jobs: already run by another serve on this var/ directory.")
        return jobs

    def _granian(self, host: str, port: int, workers: int) -> None:
        try:
            from granian import Granian
            from granian.constants import Interfaces, Loops
            from granian.log import LogLevels
        except ImportError:
            from django.core.management.base import CommandError

            raise CommandError("granian is not installed: pip install granian") from None
        Granian(ASGI_APP, address=host, port=port, interface=Interfaces.ASGI, workers=max(1, workers),
                loop=Loops.auto, log_level=LogLevels.warning, backlog=2048).serve()  # fmt: skip

    def _daphne(self, host: str, port: int) -> None:
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(["-b", host, "-p", str(port), "--verbosity", "0", ASGI_APP])
