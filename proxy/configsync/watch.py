"""The watched config file and auth dir, applied to the database by one serving process.

Every serving process calls ``start_watcher()``; they compete for a lease and only the
holder watches and applies (so a change is applied once, and recorded once). Applying
saves rows, which bumps the config version, which every process picks up. The lease is a
key in the shared cache with a TTL when Redis is configured, and an OS file lock under
``var/`` otherwise (one machine, several workers); if its holder dies, another process
takes over within a few seconds and first applies whatever changed meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connections

from llmproxy.config import Config, ConfigError, load
from llmproxy.watcher import ConfigWatcher
from proxy.models import ConfigImport

from . import accounts, apply
from .version import bump_config_version

log = logging.getLogger("llmproxy.watch")
LEASE_KEY = "llmproxy:config-watcher"
LEASE_TTL = 15.0


class Lease(Protocol):
    def acquire(self) -> bool: ...
    def renew(self) -> bool: ...
    def release(self) -> None: ...


class CacheLease:
    """A key in the shared cache (Redis), added with a TTL and renewed by its holder."""

    def __init__(self, key: str = LEASE_KEY, ttl: float = LEASE_TTL) -> None:
        self.key, self.ttl, self.token = key, ttl, uuid.uuid4().hex

    def acquire(self) -> bool:
        return bool(cache.add(self.key, self.token, timeout=self.ttl)) or cache.get(self.key) == self.token

    def renew(self) -> bool:
        if cache.get(self.key) == self.token:
            cache.touch(self.key, timeout=self.ttl)
            return True
        return self.acquire()

    def release(self) -> None:
        if cache.get(self.key) == self.token:
            cache.delete(self.key)


class FileLease:
    """An exclusive ``flock`` on a file: held until released or the process dies."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def renew(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def default_lease() -> Lease:
    if settings.REDIS_URL:
        return CacheLease()
    return FileLease(Path(settings.VAR_DIR) / "config-watcher.lock")


class WatchService:
    """Wins the lease, applies what changed while nobody watched, then watches until stopped."""

    def __init__(self, config_path: str | None, auth_dir: str | None, *, lease: Lease | None = None,
                 debounce_ms: int = 500, retry_seconds: float = LEASE_TTL / 3) -> None:  # fmt: skip
        self.config_path = str(Path(config_path).absolute()) if config_path else None
        self.auth_dir = auth_dir
        self.lease = lease or default_lease()
        self.debounce_ms = debounce_ms
        self.retry_seconds = retry_seconds
        self.watcher: ConfigWatcher | None = None
        self._sections: tuple[Any, ...] | None = None
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WatchService:
        self._thread = threading.Thread(target=self._run, name="llmproxy-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.lease.acquire():
                    self._lead()
                self._stop.wait(self.retry_seconds)
        finally:
            self._resign()
            connections.close_all()

    def _lead(self) -> None:
        log.info("this process applies changes to %s", self.config_path or self.auth_dir)
        self.leading.set()
        try:
            watcher = self.watcher = self._make_watcher()
            self._catch_up(watcher)
            watcher.start()
            while not self._stop.wait(self.retry_seconds):
                if not self.lease.renew():
                    log.warning("lost the config watcher lease; another process applies changes now")
                    break
        except Exception:
            log.exception("the config watcher failed; retrying")
        finally:
            self._resign()

    def _resign(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.leading.clear()
        self.lease.release()

    def _make_watcher(self) -> ConfigWatcher:
        return ConfigWatcher(
            self.config_path,
            on_change=self._apply,
            on_error=self._reject,
            auth_dir=self._auth_dir(),
            on_auth_change=self._sync_tokens,
            debounce_ms=self.debounce_ms,
        )

    def _auth_dir(self) -> str | None:
        """The config's ``auth.dir`` (relative to the file) when it loads, else the setting."""
        if self.config_path:
            try:
                return str(load(self.config_path).auth_dir())
            except ConfigError:
                pass
        return self.auth_dir

    def _catch_up(self, watcher: ConfigWatcher) -> None:
        """Apply the file if its content is not what was last imported (changed while nobody watched)."""
        with _db():
            last = ConfigImport.objects.order_by("-created_at", "-pk").values_list("content_hash", flat=True).first()
            watcher.config_hash = last or None
        watcher.check_config()
        watcher.check_auth()

    def _apply(self, config: Config) -> None:
        with _db():
            record = apply.apply_config(config, config.source)
            # These sections live in the file, not in rows: a change there saves nothing, so
            # bump the version explicitly for the processes to rebuild their snapshots (and
            # re-apply logging and management access, see process_engine).
            sections = (config.routing, dict(config.limits), config.images, config.clients, config.logging,
                        config.management)  # fmt: skip
            if record.ok and sections != self._sections:
                bump_config_version()
                self._sections = sections
        log.info("config file applied: %s", record.changes if record.ok else record.errors)

    def _reject(self, error: ConfigError) -> None:
        digest = self.watcher.config_hash if self.watcher is not None else ""
        with _db():
            apply.record_rejection(error.source, error.issues, digest or "")

    def _sync_tokens(self, paths: list[Path]) -> None:
        with _db():
            for path in paths:
                if not path.exists():
                    gone = accounts.remove_account_file(path)
                    log.info("token file %s removed%s", path.name, f": {', '.join(gone)} removed" if gone else "")
                elif (outcome := accounts.sync_account_file(path)) is None:
                    apply.sync_token_file(path)  # a bare token file: the credentials that name it
                else:
                    log.info("token file %s: %s", path.name, outcome)


@contextmanager
def _db() -> Iterator[None]:
    """Database work in a watcher thread: a fresh connection, closed after (changes are rare)."""
    close_old_connections()
    try:
        yield
    finally:
        connections.close_all()


_service: WatchService | None = None
_lock = threading.Lock()


def start_watcher(**kwargs: Any) -> WatchService | None:
    """Start this process's watcher (once; later calls return the same one). Returns at once.

    Call from the serving process's startup (the engine's start); safe to call in every
    worker: only one at a time holds the lease and applies changes.
    """
    global _service
    conf = settings.LLMPROXY
    config_path = conf.get("CONFIG")
    auth_dir = conf.get("AUTH_DIR")
    if not config_path and not (auth_dir and Path(auth_dir).is_dir()):
        return None
    with _lock:
        if _service is None:
            kwargs.setdefault("debounce_ms", int(conf.get("WATCH_DEBOUNCE_MS", 500)))
            _service = WatchService(config_path, auth_dir, **kwargs).start()
        return _service


def stop_watcher() -> None:
    """Stop watching and hand the lease to another process (engine shutdown)."""
    global _service
    with _lock:
        if _service is not None:
            _service.stop()
            _service = None
