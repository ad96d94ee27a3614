"""Shared fixtures: fake upstreams and account services, and the real ASGI app served on a loopback port."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from llmproxy.http import HTTPClient
from tests.fakes import FakeUpstream
from tests.fakes.claude_oauth import FakeClaude
from tests.fakes.github import FakeGitHub
from tests.fakes.google_oauth import FakeGoogle
from tests.fakes.kiro_auth import FakeKiroAuth


@pytest.fixture(autouse=True)
def _forget_failed_keys() -> Iterator[None]:
    """Each test starts with no failed management-key attempts counted (they throttle per address)."""
    from django.conf import settings

    if settings.configured and "proxy" in " ".join(settings.INSTALLED_APPS):
        from proxy.api.throttle import forget_failures

        forget_failures()
    yield


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    """One fake upstream for the session; scripts are cleared before every test that uses it."""
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream
    upstream.reset()


class LiveServer:
    """uvicorn serving ``llmproxy_site.asgi.application`` in a thread, with its own loop."""

    def __init__(self) -> None:
        import uvicorn

        from llmproxy_site.asgi import application

        self.loop = asyncio.new_event_loop()
        self.config = uvicorn.Config(application, host="127.0.0.1", port=0, lifespan="on", log_level="warning",
                                     access_log=False, loop="asyncio", proxy_headers=False)  # fmt: skip
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> LiveServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        assert self.server.started, "live server did not start"
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def engine(self) -> Any:
        from proxy.serving.process_engine import get_engine

        return get_engine()

    def reload(self) -> None:
        """Rebuild the snapshot now instead of waiting for the poller."""
        serving, configured = self.call(self.engine.run_db(_databases))
        assert serving == configured, (
            f"the live server reads database {serving!r} but the tests write {configured!r}: "
            "the test databases were set up again after the server connected"
        )
        self.call(self.engine.reload(force=True))
        self.engine.gateway.router.clear()

    def flush_usage(self) -> int:
        """Ingest the journal now, as the ingester would (waits for streams to settle first)."""
        from proxy.jobs.usage_ingest import Ingester

        self.call(asyncio.sleep(0.05))
        return Ingester(self.engine.journal.directory, quota_bytes=2**40).drain()


def _databases() -> tuple[str, str]:
    """(the database this thread's connection is open on, the one the settings name now).

    Run on the live server's database thread: a connection opened before the test databases
    were set up (again) keeps reading the old one while the tests write the new one."""
    import os

    from django.conf import settings
    from django.db import connection

    configured = str(settings.DATABASES["default"]["NAME"])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT current_database()")
            return str(cursor.fetchone()[0]), configured
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA database_list")
            main = next(row[2] for row in cursor.fetchall() if row[1] == "main")
            return os.path.realpath(main), os.path.realpath(configured)
    return configured, configured


@pytest.fixture(scope="session")
def live_server_session(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    from django.conf import settings

    # This session's own journal: nothing another run left behind reaches its database.
    settings.LLMPROXY["USAGE_JOURNAL_DIR"] = str(tmp_path_factory.mktemp("usage-journal"))
    with django_db_blocker.unblock():
        server = LiveServer().start()
    yield server
    with django_db_blocker.unblock():
        server.stop()


@pytest.fixture
def live(live_server_session: LiveServer, transactional_db: Any) -> Iterator[LiveServer]:
    live_server_session.reload()
    yield live_server_session
    live_server_session.flush_usage()


@pytest.fixture
async def http() -> AsyncIterator[HTTPClient]:
    client = HTTPClient()
    yield client
    await client.close()


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    """GitHub's device login and Copilot's token exchange (one per test module)."""
    fake = FakeGitHub().start()
    yield fake  # type: ignore[misc]
    fake.stop()


@pytest.fixture(scope="module")
def claude() -> Iterator[FakeClaude]:
    """Claude's OAuth service (one per test module)."""
    fake = FakeClaude().start()
    yield fake  # type: ignore[misc]
    fake.stop()


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogle]:
    """Google's OAuth service and Code Assist (one per test module)."""
    fake = FakeGoogle().start()
    yield fake  # type: ignore[misc]
    fake.stop()


@pytest.fixture(scope="module")
def kiro() -> Iterator[FakeKiroAuth]:
    """AWS SSO-OIDC and Kiro's auth service (one per test module)."""
    fake = FakeKiroAuth().start()
    yield fake  # type: ignore[misc]
    fake.stop()
