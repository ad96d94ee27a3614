"""proxy.configsync.watch: one process holds the lease and applies the watched file to the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.cache import cache

from proxy.configsync import watch
from proxy.models import ConfigImport, ConfigVersion, Credential, Provider

pytestmark = pytest.mark.django_db(transaction=True)

V1 = "providers:\n  up:\n    type: openai\n    credentials: [{api_key: sk-1}]\n    models: [m1]\n"
V2 = "providers:\n  up:\n    type: openai\n    credentials: [{api_key: sk-1}]\n    models: [m1, m2]\n"
BAD = "providers:\n  up: {type: claud}\n"


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Path, watch.WatchService]]:
    path = tmp_path / "config.yaml"
    path.write_text(V1)
    (tmp_path / "auths").mkdir()
    svc = watch.WatchService(str(path), None, lease=watch.FileLease(tmp_path / "lock"), debounce_ms=50,
                             retry_seconds=0.05)  # fmt: skip
    svc.start()
    yield path, svc
    svc.stop()


def routes() -> set[str]:
    return set(Provider.objects.get(name="up").routes.values_list("name", flat=True))


def test_it_applies_the_file_at_start_then_each_change(service: tuple[Path, watch.WatchService]) -> None:
    path, svc = service
    eventually(lambda: Provider.objects.filter(name="up").exists())
    assert routes() == {"m1"}
    assert svc.watcher is not None and svc.watcher.wait_ready(5)
    version = ConfigVersion.objects.get(pk=1).version
    path.write_text(V2)
    eventually(lambda: routes() == {"m1", "m2"})
    eventually(lambda: ConfigVersion.objects.get(pk=1).version > version)
    eventually(lambda: ConfigImport.objects.filter(ok=True).count() == 2)


def test_it_records_a_bad_file_and_keeps_the_database(service: tuple[Path, watch.WatchService]) -> None:
    path, svc = service
    eventually(lambda: ConfigImport.objects.count() == 1)
    assert svc.watcher is not None and svc.watcher.wait_ready(5)
    path.write_text(BAD)
    eventually(lambda: ConfigImport.objects.filter(ok=False).exists())
    rejected = ConfigImport.objects.get(ok=False)
    assert rejected.errors[0]["path"] == "providers.up.type"
    assert rejected.source == str(path)
    assert routes() == {"m1"}


def test_it_syncs_changed_token_files(tmp_path: Path) -> None:
    (tmp_path / "auths").mkdir()
    token = tmp_path / "auths" / "claude-me.json"
    token.write_text('{"access_token": "at-1"}')
    path = tmp_path / "config.yaml"
    path.write_text("providers:\n  c:\n    type: claude\n    credentials: [{file: claude-me.json}]\n")
    svc = watch.WatchService(str(path), None, lease=watch.FileLease(tmp_path / "lock"), debounce_ms=50,
                             retry_seconds=0.05).start()  # fmt: skip
    try:
        eventually(lambda: Credential.objects.filter(file="claude-me.json").exists())
        assert Credential.objects.get().access_token == "at-1"
        assert svc.watcher is not None and svc.watcher.wait_ready(5)
        token.write_text('{"access_token": "at-2"}')
        eventually(lambda: Credential.objects.get().access_token == "at-2")
    finally:
        svc.stop()


def test_it_skips_the_start_apply_when_the_file_was_already_imported(tmp_path: Path) -> None:
    from proxy.configsync.apply import import_config_file

    path = tmp_path / "config.yaml"
    path.write_text(V1)
    assert import_config_file(path).ok
    svc = watch.WatchService(str(path), None, lease=watch.FileLease(tmp_path / "lock"), debounce_ms=50,
                             retry_seconds=0.05).start()  # fmt: skip
    try:
        eventually(lambda: svc.watcher is not None and svc.watcher.wait_ready(0.1))
        assert ConfigImport.objects.count() == 1
    finally:
        svc.stop()


def test_file_lease_admits_one_holder(tmp_path: Path) -> None:
    a, b = watch.FileLease(tmp_path / "lock"), watch.FileLease(tmp_path / "lock")
    assert a.acquire() and a.renew()
    assert not b.acquire()
    a.release()
    assert b.acquire()
    b.release()


def test_cache_lease_admits_one_holder() -> None:
    a, b = watch.CacheLease("test:lease", ttl=30), watch.CacheLease("test:lease", ttl=30)
    try:
        assert a.acquire() and a.acquire()
        assert not b.acquire() and not b.renew()
        assert a.renew()
        a.release()
        assert b.acquire()
    finally:
        cache.delete("test:lease")


def test_only_the_lease_holder_watches(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(V1)
    lock = tmp_path / "lock"
    first = watch.WatchService(str(path), None, lease=watch.FileLease(lock), debounce_ms=50, retry_seconds=0.05)
    second = watch.WatchService(str(path), None, lease=watch.FileLease(lock), debounce_ms=50, retry_seconds=0.05)
    first.start()
    try:
        assert first.leading.wait(5)
        second.start()
        time.sleep(0.2)
        assert not second.leading.is_set()
        first.stop()
        assert second.leading.wait(5)  # takes over when the holder goes
    finally:
        first.stop()
        second.stop()


def test_it_bumps_the_version_when_only_the_routing_section_changes(
    service: tuple[Path, watch.WatchService],
) -> None:
    path, svc = service
    eventually(lambda: ConfigImport.objects.count() == 1)
    assert svc.watcher is not None and svc.watcher.wait_ready(5)
    version = ConfigVersion.objects.get(pk=1).version
    path.write_text(V1 + "routing: {max_attempts: 5}\n")
    eventually(lambda: ConfigImport.objects.count() == 2)
    eventually(lambda: ConfigVersion.objects.get(pk=1).version > version)
    assert ConfigImport.objects.order_by("-pk").first().changes["updated"] == []  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "section",
    [
        "logging: {level: warning}",
        "management: {allow_remote: true}",
        "clients: {max_key_failures: 3}",
        "images: {max_bytes: 1000}",
    ],
)
def test_it_bumps_the_version_when_a_site_section_changes(
    service: tuple[Path, watch.WatchService], section: str
) -> None:
    """Every process then rebuilds its snapshot and re-applies logging and management access."""
    path, svc = service
    eventually(lambda: ConfigImport.objects.count() == 1)
    assert svc.watcher is not None and svc.watcher.wait_ready(5)
    version = ConfigVersion.objects.get(pk=1).version
    path.write_text(V1 + section + "\n")
    eventually(lambda: ConfigImport.objects.count() == 2)
    eventually(lambda: ConfigVersion.objects.get(pk=1).version > version)
