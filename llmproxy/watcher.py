"""Watch config.yaml and the auth dir; hand a validated new config to a callback.

Changes are debounced (an editor's save is several file events), and compared by content
hash, so touching a file, saving it unchanged, or an editor's write-temp-then-rename dance
calls nothing. A file that fails validation goes to ``on_error`` and never replaces the
running config: the caller keeps what it has until a good file arrives.

    watcher = Watcher("config.yaml", auth_dir="auths", on_change=gw.apply, synthesizer=MySynthesizer())
    watcher.start()

``Watcher`` is the public class: every change, of config.yaml or of a token file in the
auth dir, reaches ``on_change`` as ``synthesizer.synthesize(base, overrides)`` (see
``llmproxy.synthesizer``). ``ConfigWatcher`` is the lower layer it is built on: separate
callbacks for the config and for token files, no synthesizer (the server uses it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import watchfiles

from .config import Config, ConfigError, ConfigIssue, loads
from .synthesizer import Synthesizer, synthesize

log = logging.getLogger("llmproxy.watcher")

OnChange = Callable[[Config], None]
OnError = Callable[[ConfigError], None]
OnAuthChange = Callable[[list[Path]], None]


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ConfigWatcher:
    """A daemon thread on watchfiles; callbacks run in that thread, one change at a time."""

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        *,
        on_change: OnChange | None = None,
        on_error: OnError | None = None,
        auth_dir: str | os.PathLike[str] | None = None,
        on_auth_change: OnAuthChange | None = None,
        debounce_ms: int = 500,
        env: Mapping[str, str] | None = None,
    ) -> None:
        # absolute(), not resolve(): a symlinked config must stay recognisable as one.
        self.config_path = Path(config_path).absolute() if config_path else None
        self.auth_dir = Path(auth_dir).absolute() if auth_dir else None
        self.on_change = on_change
        self.on_error = on_error
        self.on_auth_change = on_auth_change
        self.debounce_ms = debounce_ms
        self.env = env
        #: Hash of the config content last seen (good or bad); None until primed.
        self.config_hash: str | None = None
        self._auth_hashes: dict[Path, str] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._batches = 0
        self._cond = threading.Condition()

    def check_config(self) -> bool:
        """Read the config now; if its content changed, validate it and call back. True if applied."""
        if self.config_path is None:
            return False
        try:
            data = self.config_path.read_bytes()
        except FileNotFoundError:
            log.info("%s is missing (mid-save or removed); keeping the running config", self.config_path)
            return False
        digest = _hash(data)
        if digest == self.config_hash:
            return False
        self.config_hash = digest
        try:
            config = self._parse(data)
        except ConfigError as exc:
            log.warning("%s rejected, keeping the running config:\n%s", self.config_path, exc)
            if self.on_error is not None:
                self.on_error(exc)
            return False
        log.info("%s changed and is valid", self.config_path)
        if self.on_change is not None:
            self.on_change(config)
        return True

    def _parse(self, data: bytes) -> Config:
        assert self.config_path is not None
        source = str(self.config_path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError([ConfigIssue("", f"not UTF-8 text: {exc}")], source) from None
        return loads(text, source, env=self.env, base_dir=str(self.config_path.parent))

    def check_auth(self, paths: list[Path] | None = None) -> list[Path]:
        """Token files whose content changed (or that vanished) since last seen; calls back with them."""
        if self.auth_dir is None:
            return []
        candidates = paths if paths is not None else self._auth_files()
        changed: list[Path] = []
        for path in sorted(set(candidates)):
            try:
                digest: str | None = _hash(path.read_bytes())
            except (FileNotFoundError, IsADirectoryError):
                digest = None
            if digest == self._auth_hashes.get(path):
                continue
            if digest is None:
                self._auth_hashes.pop(path, None)
            else:
                self._auth_hashes[path] = digest
            changed.append(path)
        if changed and self.on_auth_change is not None:
            self.on_auth_change(changed)
        return changed

    def _auth_files(self) -> list[Path]:
        if self.auth_dir is None or not self.auth_dir.is_dir():
            return []
        return [p for p in self.auth_dir.iterdir() if p.suffix == ".json" and p.is_file()] + list(self._auth_hashes)

    def prime(self) -> None:
        """Take the files as they are now as the baseline: later changes are measured against it."""
        if self.config_hash is None and self.config_path is not None:
            try:
                self.config_hash = _hash(self.config_path.read_bytes())
            except FileNotFoundError:
                self.config_hash = ""
        if self.auth_dir is not None:
            for path in self._auth_files():
                try:
                    self._auth_hashes[path] = _hash(path.read_bytes())
                except FileNotFoundError:
                    pass

    def start(self) -> ConfigWatcher:
        self.prime()
        self._thread = threading.Thread(target=self._run, name="llmproxy-config-watcher", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """True once the file system watch is in place (changes from then on are seen)."""
        return self._ready.wait(timeout)

    def wait_batches(self, count: int, timeout: float = 5.0) -> bool:
        """True once ``count`` batches of file events have been handled (for tests and tools)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._batches >= count, timeout)

    @property
    def batches(self) -> int:
        return self._batches

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _dirs(self) -> list[Path]:
        dirs: list[Path] = []
        if self.config_path is not None:
            dirs.append(self.config_path.parent)
        if self.auth_dir is not None:
            if self.auth_dir.is_dir():
                dirs.append(self.auth_dir)
            else:
                log.warning("auth dir %s does not exist; token files are not watched", self.auth_dir)
        return list(dict.fromkeys(dirs))

    def _relevant(self, change: watchfiles.Change, raw: str) -> bool:
        path = Path(raw)
        config = self.config_path
        # A symlinked config (a mounted ConfigMap) changes by swapping links beside it.
        if config is not None and path.parent == config.parent and (path.name == config.name or config.is_symlink()):
            return True
        return self.auth_dir is not None and path.parent == self.auth_dir and path.suffix == ".json"

    def _run(self) -> None:
        dirs = self._dirs()
        if not dirs:
            self._ready.set()
            return
        try:
            for changes in watchfiles.watch(
                *dirs,
                watch_filter=self._relevant,
                step=self.debounce_ms,
                debounce=max(self.debounce_ms * 4, 2000),
                rust_timeout=min(250, max(50, self.debounce_ms * 2)),
                yield_on_timeout=True,
                stop_event=self._stop,
                recursive=False,
                raise_interrupt=False,
            ):
                self._ready.set()
                if changes:
                    self._handle({Path(p) for _, p in changes})
        except Exception:
            log.exception("the config watcher stopped")
        finally:
            self._ready.set()

    def _handle(self, paths: set[Path]) -> None:
        try:
            if self.config_path is not None and any(p.parent == self.config_path.parent for p in paths):
                self.check_config()
            auth = [p for p in paths if self.auth_dir is not None and p.parent == self.auth_dir]
            if auth:
                self.check_auth(auth)
        except Exception:
            log.exception("applying a config change failed; the running config stays")
        finally:
            with self._cond:
                self._batches += 1
                self._cond.notify_all()


class Watcher(ConfigWatcher):
    """Watch config.yaml and the auth dir; hand ``synthesizer.synthesize(base, overrides)`` to ``on_change``.

    ``base`` is the last valid config.yaml; a token file added, changed or removed in
    ``auth_dir`` re-synthesizes from it (the overrides changed, the file did not). A
    config that fails validation goes to ``on_error`` and nothing is synthesized.
    ``auth_dir`` defaults to the config's own ``auth.dir``.
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str],
        *,
        auth_dir: str | os.PathLike[str] | None = None,
        on_change: OnChange | None = None,
        synthesizer: Synthesizer | None = None,
        on_error: OnError | None = None,
        debounce_ms: int = 500,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(config_path, on_error=on_error, debounce_ms=debounce_ms, env=env)
        self.synthesizer = synthesizer
        self.user_on_change = on_change
        #: The last valid config.yaml as parsed, before synthesis; None until one was read.
        self.base: Config | None = None
        if auth_dir is None:
            try:
                auth_dir = self._base().auth_dir()
            except ConfigError:
                auth_dir = None
        self.auth_dir = Path(auth_dir).absolute() if auth_dir else None
        self.on_change = self._config_changed
        self.on_auth_change = self._auth_changed

    def _base(self) -> Config:
        if self.base is None:
            assert self.config_path is not None
            try:
                data = self.config_path.read_bytes()
            except FileNotFoundError:
                raise ConfigError([ConfigIssue("", "file not found")], str(self.config_path)) from None
            self.base = self._parse(data)
        return self.base

    def current(self) -> Config:
        """The config as served now: the last valid file, synthesized with today's overrides."""
        return synthesize(self._base(), self.synthesizer, self.env)

    def _config_changed(self, config: Config) -> None:
        self.base = config
        self._emit()

    def _auth_changed(self, paths: list[Path]) -> None:
        try:
            self._base()
        except ConfigError as exc:
            log.warning("token files changed but the config is not valid: %s", exc)
            return
        self._emit()

    def _emit(self) -> None:
        config = self.current()
        if self.user_on_change is not None:
            self.user_on_change(config)
