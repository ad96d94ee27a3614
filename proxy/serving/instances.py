"""Whether another ``serve`` shares this database without Redis, where limits would be its own.

Without ``REDIS_URL`` limits, budgets and cooldowns live in each serving process's memory.
``serve`` refuses ``--workers N`` then, but two ``serve`` instances on one database (two
ports, or two machines on one PostgreSQL) look like one until they meet. So each holds a
lock for its lifetime (``flock`` on a file beside the SQLite database, a session
advisory lock on PostgreSQL), and one that finds it taken is told that its limits are its
own. Warned, not refused: several processes on one embedded database are supported for
everything else (a config change or a token refresh reaches all of them).
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from django.db import connections

#: The advisory lock's key (``llmp``); advisory locks are per database already.
LOCK_KEY = 0x6C6C6D70

_held: list[Any] = []  # what keeps the locks: open files, database connections


def claim_serving(alias: str = "default") -> bool | None:
    """Take this database's serving lock: True when taken, False when another instance holds
    it, None when this database cannot tell (an in-memory SQLite, another vendor)."""
    conn = connections[alias]
    if conn.vendor == "sqlite":
        name = str(conn.settings_dict["NAME"])
        if name == ":memory:" or name.startswith("file:") or not os.path.isfile(name):
            return None
        fd = os.open(name + ".serving.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        _held.append(fd)
        return True
    if conn.vendor == "postgresql":
        own = connections.create_connection(alias)  # its own session: the lock lives as long as it
        with own.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
            row = cur.fetchone()
        if row is not None and row[0]:
            _held.append(own)
            return True
        own.close()
        return False
    return None


def release_serving() -> None:
    """Give the locks back (tests; a process's exit does it anyway)."""
    while _held:
        held = _held.pop()
        if isinstance(held, int):
            os.close(held)
        else:
            held.close()
