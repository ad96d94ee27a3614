"""``FileTokenStore``: the ``TokenStore`` of one host's processes when there is no Redis.

Leases are ``flock`` locks on files under ``root`` (the kernel drops them when their
process dies, so a crashed refresher never blocks the others for long); published tokens
are small JSON files (mode 0600, written then renamed) with their expiry inside.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path


class FileTokenStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._held: dict[str, tuple[str, int]] = {}  # key -> (owner, fd)
        self._guard = threading.Lock()

    def _path(self, key: str, suffix: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return self.root / f"{digest}.{suffix}"

    async def get(self, key: str) -> str | None:
        try:
            data = json.loads(self._path(key, "json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or float(data.get("until", 0)) <= time.time():
            return None
        value = data.get("value")
        return value if isinstance(value, str) else None

    async def put(self, key: str, value: str, ttl: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"value": value, "until": time.time() + ttl}, fh)
            os.replace(tmp, self._path(key, "json"))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def lock(self, key: str, owner: str, ttl: float) -> bool:
        """A non-blocking flock; ``ttl`` is not needed (the lock ends with its process)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._guard:
            if key in self._held:
                return self._held[key][0] == owner
            fd = os.open(self._path(key, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._held[key] = (owner, fd)
            return True

    async def unlock(self, key: str, owner: str) -> None:
        with self._guard:
            held = self._held.get(key)
            if held is None or held[0] != owner:
                return
            del self._held[key]
            fcntl.flock(held[1], fcntl.LOCK_UN)
            os.close(held[1])
