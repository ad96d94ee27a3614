"""Where stored Responses API responses live: ``ResponseStore`` and its in-process implementation.

With ``store`` true (OpenAI's default) a ``/v1/responses`` call keeps its response and
its items, per client key, for ``responses.retention_days``; ``previous_response_id``
and ``item_reference`` input items are resolved from here, whatever the upstream
(``llmproxy.conversations``). Two implementations: ``MemoryResponseStore`` (this
process; with a ``path`` it appends every change to a file and reads it back on start,
so the embedded profile keeps its responses across a restart) and, when ``REDIS_URL`` is
set, ``llmproxy._responses_redis.RedisResponseStore`` (several processes and machines
share it; Redis expires the keys). ``llmproxy.stores.create_response_store`` picks one.

Every record carries its ``expires_at`` (wall-clock seconds); a store never answers with
an expired record, whatever its own clean-up has done yet.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._json import dumps, loads

__all__ = ["MemoryResponseStore", "ResponseStore", "StoredResponse"]

log = logging.getLogger("llmproxy.responses")


@dataclass(slots=True)
class StoredResponse:
    """One stored response: the object its client got, and the input items it was made from."""

    id: str
    #: Whose it is: the client key's id ("-" when the gateway takes calls without keys).
    owner: str
    #: The response object as the client received it (its ``output`` are the output items).
    response: dict[str, Any]
    #: This call's own input items, ``item_reference`` items resolved; not the earlier turns.
    input: list[dict[str, Any]] = field(default_factory=list)
    #: The response this one continued (``previous_response_id``), whose context comes first.
    previous_id: str | None = None
    created_at: float = 0.0
    expires_at: float = 0.0

    @property
    def output(self) -> list[dict[str, Any]]:
        out = self.response.get("output")
        return [i for i in out if isinstance(i, dict)] if isinstance(out, list) else []

    def items(self) -> list[dict[str, Any]]:
        """The items an ``item_reference`` may name: input and output items that carry an id."""
        return [i for i in (*self.input, *self.output) if isinstance(i.get("id"), str) and i["id"]]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "owner": self.owner, "response": self.response, "input": self.input,
                "previous_id": self.previous_id, "created_at": self.created_at, "expires_at": self.expires_at}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoredResponse:
        return cls(str(d["id"]), str(d["owner"]), dict(d["response"]), list(d.get("input") or []),
                   d.get("previous_id"), float(d.get("created_at") or 0), float(d.get("expires_at") or 0))  # fmt: skip


class ResponseStore(ABC):
    """Stored responses by (owner, id), and their items by (owner, item id)."""

    #: Whether other processes see what this one saves (a miss may be a write still on its way).
    shared: bool = False

    @abstractmethod
    async def save(self, record: StoredResponse) -> None:
        """Keep ``record`` until its ``expires_at``; its items become findable by id."""

    @abstractmethod
    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        """The owner's response, or None (unknown, another key's, deleted or expired)."""

    @abstractmethod
    async def item(self, owner: str, item_id: str) -> dict[str, Any] | None:
        """An item of one of the owner's stored responses, or None."""

    @abstractmethod
    async def delete(self, owner: str, response_id: str) -> bool:
        """Forget the owner's response and its items; whether there was one."""

    async def aclose(self) -> None:  # noqa: B027 - optional for implementations without connections
        """Release connections (the Redis store)."""


class MemoryResponseStore(ResponseStore):
    """This process's memory; with ``path``, an append-only file read back on start.

    Each change is one line (``put`` or ``del``) written with one ``os.write`` to the
    page cache, which costs microseconds; the file is rewritten without dead and expired
    lines when they are most of it (checked on opening and every 256 saves). Several processes must not share one file:
    give each its own, or use Redis so that they share the responses.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.path = Path(path) if path is not None else None
        self._records: dict[tuple[str, str], StoredResponse] = {}
        self._items: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._saves = 0
        self._lines = 0  # lines in the file: live records plus the dead (replaced, deleted, expired)
        if self.path is not None:
            self._open(self.path)

    # -- the file --------------------------------------------------------------------------
    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = 0
        if path.exists():
            with path.open("rb") as f:
                for raw in f:
                    lines += 1
                    self._replay(raw)
        self._lines = lines
        self._sweep()
        self._compact()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _compact(self) -> None:
        """Rewrite the file without its dead lines when they are most of it."""
        if self.path is None or self._lines <= 2 * len(self._records) + 1024:
            return
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        self._rewrite(self.path)
        self._lines = len(self._records)
        if fd is not None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _replay(self, raw: bytes) -> None:
        try:
            op = loads(raw)
            if op.get("op") == "put":
                self._put(StoredResponse.from_dict(op["r"]))
            elif op.get("op") == "del":
                self._drop(str(op["owner"]), str(op["id"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("skipping an unreadable line in %s", self.path)  # a torn last line after a crash

    def _rewrite(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as f:
            for r in self._records.values():
                f.write(dumps({"op": "put", "r": r.to_dict()}) + b"\n")
        os.replace(tmp, path)

    def _append(self, op: dict[str, Any]) -> None:
        if self._fd is not None:
            try:
                os.write(self._fd, dumps(op) + b"\n")
                self._lines += 1
            except OSError as exc:  # the response was served; only its keeping across a restart is lost
                log.warning("could not write %s: %s", self.path, exc)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the maps ----------------------------------------------------------------------------
    def _put(self, record: StoredResponse) -> None:
        self._drop(record.owner, record.id)
        self._records[(record.owner, record.id)] = record
        for item in record.items():
            self._items[(record.owner, item["id"])] = (record.id, item)

    def _drop(self, owner: str, response_id: str) -> StoredResponse | None:
        record = self._records.pop((owner, response_id), None)
        if record is not None:
            for item in record.items():
                if self._items.get((owner, item["id"]), ("",))[0] == response_id:
                    del self._items[(owner, item["id"])]
        return record

    def _sweep(self) -> None:
        now = self.clock()
        for owner, rid in [k for k, r in self._records.items() if r.expires_at <= now]:
            self._drop(owner, rid)

    def _live(self, owner: str, response_id: str) -> StoredResponse | None:
        record = self._records.get((owner, response_id))
        if record is not None and record.expires_at <= self.clock():
            self._drop(owner, response_id)
            return None
        return record

    # -- ResponseStore -------------------------------------------------------------------------
    async def save(self, record: StoredResponse) -> None:
        with self._lock:
            self._put(record)
            self._append({"op": "put", "r": record.to_dict()})
            self._saves += 1
            if self._saves % 256 == 0:
                self._sweep()
                self._compact()

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        with self._lock:
            return self._live(owner, response_id)

    async def item(self, owner: str, item_id: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._items.get((owner, item_id))
            if hit is None or self._live(owner, hit[0]) is None:
                return None
            return hit[1]

    async def delete(self, owner: str, response_id: str) -> bool:
        with self._lock:
            found = self._live(owner, response_id) is not None
            if found:
                self._drop(owner, response_id)
                self._append({"op": "del", "owner": owner, "id": response_id})
            return found

    async def aclose(self) -> None:
        self.close()
