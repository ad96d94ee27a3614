"""ConfigWatcher on a real directory: debounced, hash-compared, a bad file never applied."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmproxy.config import Config, ConfigError
from llmproxy.watcher import ConfigWatcher

GOOD = "providers:\n  a: {type: openai, models: [m1]}\n"
GOOD2 = "providers:\n  a: {type: openai, models: [m1, m2]}\n"
BAD = "providers:\n  a: {type: claud}\n"


class Recorder:
    def __init__(self) -> None:
        self.configs: list[Config] = []
        self.errors: list[ConfigError] = []
        self.auth: list[list[Path]] = []
        self.event = threading.Event()

    def change(self, cfg: Config) -> None:
        self.configs.append(cfg)
        self.event.set()

    def error(self, err: ConfigError) -> None:
        self.errors.append(err)
        self.event.set()

    def auth_change(self, paths: list[Path]) -> None:
        self.auth.append(paths)
        self.event.set()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Recorder, ConfigWatcher]]:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    (tmp_path / "auths").mkdir()
    rec = Recorder()
    watcher = ConfigWatcher(path, on_change=rec.change, on_error=rec.error, auth_dir=tmp_path / "auths",
                            on_auth_change=rec.auth_change, debounce_ms=50, env={})  # fmt: skip
    watcher.start()
    assert watcher.wait_ready(5)
    yield path, rec, watcher
    watcher.stop()


def settle(watcher: ConfigWatcher, before: int) -> None:
    """Wait until the watcher has handled at least one more batch of file events."""
    assert watcher.wait_batches(before + 1, timeout=5), "the watcher saw no change"


def test_watcher_applies_a_changed_file(setup: tuple[Path, Recorder, ConfigWatcher]) -> None:
    path, rec, watcher = setup
    n = watcher.batches
    path.write_text(GOOD2)
    settle(watcher, n)
    assert [[m.name for m in c.providers["a"].models] for c in rec.configs] == [["m1", "m2"]]
    assert rec.errors == []


def test_watcher_ignores_a_save_with_the_same_content(setup: tuple[Path, Recorder, ConfigWatcher]) -> None:
    path, rec, watcher = setup
    n = watcher.batches
    path.write_text(GOOD)
    os.utime(path)
    settle(watcher, n)
    assert rec.configs == [] and rec.errors == []


def test_watcher_ignores_an_editor_rename_replace_with_the_same_content(
    setup: tuple[Path, Recorder, ConfigWatcher],
) -> None:
    path, rec, watcher = setup
    n = watcher.batches
    tmp = path.with_name(".config.yaml.swp")
    tmp.write_text(GOOD)
    os.replace(tmp, path)
    settle(watcher, n)
    assert rec.configs == [] and rec.errors == []
    n = watcher.batches
    tmp.write_text(GOOD2)
    os.replace(tmp, path)
    settle(watcher, n)
    assert len(rec.configs) == 1


def test_watcher_keeps_the_running_config_on_a_bad_file_then_takes_a_good_one(
    setup: tuple[Path, Recorder, ConfigWatcher],
) -> None:
    path, rec, watcher = setup
    n = watcher.batches
    path.write_text(BAD)
    settle(watcher, n)
    assert rec.configs == []
    assert len(rec.errors) == 1 and rec.errors[0].issues[0].path == "providers.a.type"
    n = watcher.batches
    path.write_text(GOOD2)
    settle(watcher, n)
    assert len(rec.configs) == 1 and len(rec.errors) == 1


def test_watcher_debounces_a_burst_of_writes_into_one_apply(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    rec = Recorder()
    watcher = ConfigWatcher(path, on_change=rec.change, on_error=rec.error, debounce_ms=300, env={}).start()
    try:
        assert watcher.wait_ready(5)
        for text in (BAD, GOOD2[:20], GOOD2):  # a half-written file in the middle is never seen
            path.write_text(text)
        assert watcher.wait_batches(1, timeout=5)
        assert rec.errors == [] and len(rec.configs) == 1
    finally:
        watcher.stop()


def test_watcher_reports_changed_token_files_only(setup: tuple[Path, Recorder, ConfigWatcher]) -> None:
    path, rec, watcher = setup
    token = path.parent / "auths" / "claude-me.json"
    n = watcher.batches
    token.write_text('{"access_token": "a"}')
    settle(watcher, n)
    assert rec.auth == [[token]]
    n = watcher.batches
    token.write_text('{"access_token": "a"}')
    (path.parent / "auths" / "notes.txt").write_text("ignored")
    token.write_text('{"access_token": "a"}')
    settle(watcher, n)
    assert rec.auth == [[token]]
    assert rec.configs == []


def test_watcher_check_config_without_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    rec = Recorder()
    watcher = ConfigWatcher(path, on_change=rec.change, on_error=rec.error, env={})
    assert watcher.check_config() is True
    assert watcher.check_config() is False  # same content
    path.unlink()
    assert watcher.check_config() is False  # a missing file keeps the running config
    assert len(rec.configs) == 1 and rec.errors == []
