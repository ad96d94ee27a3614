"""The Responses API's state: ``previous_response_id`` and ``item_reference`` resolved, responses kept.

OpenAI's Responses API keeps a response and its items when ``store`` is true (the
default), and a later call may continue it with ``previous_response_id`` or name one of
its items with an ``item_reference`` input item. The gateway does the same itself, for
every upstream: ``prepare`` rewrites the client's body into the whole conversation
(earlier turns first, references replaced by the items they name) before it is decoded,
so a Chat, Anthropic or Gemini upstream gets it translated like any other input, and an
OpenAI Responses upstream gets the items rather than an id it may never have seen (it
may be another provider or credential). ``remember`` keeps the reply once it is
complete: the record goes into this process's pending map at once (a call that follows
on this process finds it) and to the store in the background, off the response's path.
``serve`` answers ``GET``/``DELETE /v1/responses/{id}`` and ``/input_items``.

Everything is per client key: another key's response is a 404, as if it did not exist.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import formats
from ._json import dumps, loads
from .errors import InvalidRequest, LLMProxyError
from .exchange import CONTENT_JSON, Exchange, Reply
from .responses_store import ResponseStore, StoredResponse
from .runtime import ApiKeyInfo
from .state import StoreError

log = logging.getLogger("llmproxy.responses")
INGRESS = "openai_responses"
#: How long a miss waits for a write another process may still be making (shared stores only).
_RETRY_DELAYS = (0.05, 0.2)
#: A chain longer than this is refused rather than walked.
MAX_CHAIN = 10_000
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


@dataclass(slots=True)
class Turn:
    """What one stored call keeps: whose it is, its own input items, the response it continued."""

    owner: str
    input: list[dict[str, Any]]
    previous_id: str | None = None
    #: The id the reply gets, minted here: the gateway's store needs ids unique across every
    #: upstream (an upstream's own id goes as far as the upstream; an item's ids are kept).
    response_id: str = ""

    def __post_init__(self) -> None:
        if not self.response_id:
            self.response_id = "resp_" + os.urandom(24).hex()

    @property
    def base(self) -> str:
        """The id without its ``resp_``: what the stream encoder derives item ids from."""
        return self.response_id.removeprefix("resp_")


def owner_of(key: ApiKeyInfo | None) -> str:
    """The store's owner for a client key ("-" when calls need no key)."""
    # The key's hash, not its row id: a row id may come back for another key (a new database).
    return key.key_hash[:32] if key is not None else "-"


class NotFound(LLMProxyError):
    status = 404
    code = "not_found"


class Conversations:
    """Stored responses on ``store``, with the writes still on their way held in memory."""

    def __init__(self, store: ResponseStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._pending: dict[tuple[str, str], StoredResponse] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- before the call --------------------------------------------------------------------
    async def prepare(self, ex: Exchange) -> None:
        """Resolve the body's references into ``ex.body``; ``ex.turn`` is set when the reply is to be kept."""
        body = ex.body
        if not isinstance(body, dict):
            return
        store = body.get("store", True)
        if store is None:
            store = True
        if not isinstance(store, bool):
            raise InvalidRequest("'store' must be a boolean", param="store")
        owner = owner_of(ex.key)
        raw = body.get("input")
        items: list[Any]
        if isinstance(raw, str):
            items = [{"type": "message", "role": "user", "content": raw}]
        elif isinstance(raw, list):
            items = list(raw)
        else:
            items = []  # None, or a shape the decoder refuses
        resolved, changed = await self._resolve_references(owner, items)
        prev = body.get("previous_response_id")
        context: list[dict[str, Any]] = []
        if prev is not None:
            if not isinstance(prev, str) or not prev:
                raise InvalidRequest("'previous_response_id' must be a string", param="previous_response_id")
            context = await self.context(owner, prev)
        if prev is not None or changed:
            ex.body = {k: v for k, v in body.items() if k != "previous_response_id"}
            ex.body["input"] = context + resolved
        if store:
            ex.turn = Turn(owner, [i for i in resolved if isinstance(i, dict)], prev)

    async def _resolve_references(self, owner: str, items: list[Any]) -> tuple[list[Any], bool]:
        out: list[Any] = []
        changed = False
        for i, item in enumerate(items):
            if not (isinstance(item, dict) and item.get("type") == "item_reference"):
                out.append(item)
                continue
            ref = item.get("id")
            if not isinstance(ref, str) or not ref:
                raise InvalidRequest(f"input[{i}].id is required for an item_reference", param=f"input[{i}].id")
            found = await self._item(owner, ref)
            if found is None:
                raise InvalidRequest(
                    f"Item with id {ref!r} not found: input[{i}] names an item of no stored response "
                    "of this key (responses made with store: false are not kept)",
                    param=f"input[{i}].id",
                )
            out.append(found)
            changed = True
        return out, changed

    async def context(self, owner: str, response_id: str) -> list[dict[str, Any]]:
        """The conversation up to and including ``response_id``: every turn's input, then its output."""
        chain: list[StoredResponse] = []
        seen: set[str] = set()
        rid: str | None = response_id
        while rid and rid not in seen and len(chain) < MAX_CHAIN:
            seen.add(rid)
            record = await self._get(owner, rid)
            if record is None:
                raise InvalidRequest(
                    f"Previous response with id {rid!r} not found (it may have expired, been deleted, "
                    "been made with store: false or by another key)",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            chain.append(record)
            rid = record.previous_id
        out: list[dict[str, Any]] = []
        for record in reversed(chain):
            out.extend(record.input)
            out.extend(record.output)
        return out

    async def _get(self, owner: str, response_id: str) -> StoredResponse | None:
        for delay in (0.0, *(_RETRY_DELAYS if self.store.shared else ())):
            if delay:
                await asyncio.sleep(delay)
            pending = self._pending.get((owner, response_id))
            if pending is not None:
                return pending if pending.expires_at > self.clock() else None
            try:
                record = await self.store.get(owner, response_id)
            except StoreError as exc:
                raise LLMProxyError(f"the response store is unavailable: {exc}", status=503) from None
            if record is not None:
                return record
        return None

    async def _item(self, owner: str, item_id: str) -> dict[str, Any] | None:
        for delay in (0.0, *(_RETRY_DELAYS if self.store.shared else ())):
            if delay:
                await asyncio.sleep(delay)
            for (o, _), record in list(self._pending.items()):
                if o == owner:
                    for item in record.items():
                        if item["id"] == item_id:
                            return item
            try:
                found = await self.store.item(owner, item_id)
            except StoreError as exc:
                raise LLMProxyError(f"the response store is unavailable: {exc}", status=503) from None
            if found is not None:
                return found
        return None

    # -- after the call ---------------------------------------------------------------------
    def remember(self, ex: Exchange, response: dict[str, Any]) -> None:
        """Keep a finished response (``ex.turn`` set, status completed or incomplete); never raises."""
        turn = ex.turn
        if not isinstance(turn, Turn) or response.get("status") not in ("completed", "incomplete"):
            return
        rid = response["id"] = turn.response_id
        response["store"] = True
        response["previous_response_id"] = turn.previous_id
        now = self.clock()
        record = StoredResponse(rid, turn.owner, response, turn.input, turn.previous_id, now,
                                now + ex.runtime.responses.retention)  # fmt: skip
        self._pending[(turn.owner, rid)] = record
        try:
            task = asyncio.get_running_loop().create_task(self._save(record))
        except RuntimeError:
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save(self, record: StoredResponse) -> None:
        try:
            await self.store.save(record)
        except Exception as exc:  # the reply went out; only its keeping failed
            log.warning("could not store response %s: %s", record.id, exc)
        finally:
            if self._pending.get((record.owner, record.id)) is record:
                del self._pending[(record.owner, record.id)]

    async def drain(self) -> None:
        """Wait for the writes still on their way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def tap(self, ex: Exchange, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """A Responses stream as it goes to the client; its final response is kept when it ends.

        Its events' ``response`` objects say what is kept: the turn's own id (which replaces a
        passthrough upstream's), ``store`` and ``previous_response_id``. Whole lines only: a
        line split across two network chunks waits for its end."""
        turn = ex.turn
        if not isinstance(turn, Turn):
            async for chunk in chunks:
                yield chunk
            return
        final: dict[str, Any] | None = None
        held = b""
        async for chunk in chunks:
            data = held + chunk
            cut = data.rfind(b"\n") + 1
            held, out = data[cut:], data[:cut]
            if b'"response"' in out:  # response.created, .in_progress, .completed...: a few per stream
                out, done = _restamped(out, turn)
                final = done or final
            if out:
                yield out
        if held:
            yield held
        if final is not None:
            self.remember(ex, final)

    # -- GET / DELETE ------------------------------------------------------------------------
    async def serve(
        self, owner: str, action: str, response_id: str, query: Mapping[str, list[str]], request_id: str
    ) -> Reply:
        """``get``, ``delete`` or ``input_items`` of the owner's response, in OpenAI's shapes."""
        codec = formats.get(INGRESS)
        headers = {"content-type": CONTENT_JSON, "x-request-id": request_id}
        try:
            record = await self._get(owner, response_id)
            if record is None:
                raise NotFound(f"Response with id {response_id!r} not found.")
            body: dict[str, Any]
            if action == "get":
                body = record.response
            elif action == "delete":
                self._pending.pop((owner, response_id), None)
                try:
                    await self.store.delete(owner, response_id)
                except StoreError as exc:
                    raise LLMProxyError(f"the response store is unavailable: {exc}", status=503) from None
                body = {"id": response_id, "object": "response", "deleted": True}
            else:
                body = page(listed(record), query)
        except LLMProxyError as err:
            status, err_body = codec.error_body(err)
            return Reply(status, dumps(err_body), headers)
        return Reply(200, dumps(body), headers)


def _restamped(lines: bytes, turn: Turn) -> tuple[bytes, dict[str, Any] | None]:
    """Whole SSE lines with each event's ``response`` showing the turn's id, store and previous
    id; and the final response, if a ``response.completed`` or ``.incomplete`` event is among them."""
    out: list[bytes] = []
    final: dict[str, Any] | None = None
    for line in lines.split(b"\n"):
        if line.startswith(b"data:") and b'"response"' in line:
            try:
                data = loads(line[5:])
            except ValueError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("response"), dict):
                data["response"].update(id=turn.response_id, store=True, previous_response_id=turn.previous_id)
                line = b"data: " + dumps(data)
                if data.get("type") in ("response.completed", "response.incomplete"):
                    final = data["response"]
        out.append(line)
    return b"\n".join(out), final


def listed(record: StoredResponse) -> list[dict[str, Any]]:
    """The record's input items as ``input_items`` lists them: each with an id and a status."""
    base = record.id.removeprefix("resp_")
    return [_listed_item(item, f"{base}_{i}") for i, item in enumerate(record.input)]


def _listed_item(item: dict[str, Any], suffix: str) -> dict[str, Any]:
    out = dict(item)
    kind = out.get("type") or ("message" if "role" in out else "item")
    out["type"] = kind
    if not isinstance(out.get("id"), str) or not out["id"]:
        out["id"] = f"{_ID_PREFIX.get(kind, 'item')}_{suffix}"
    if kind == "message":
        assistant = out.get("role") == "assistant"
        content = out.get("content")
        if isinstance(content, str):
            content = [{"type": "output_text" if assistant else "input_text", "text": content}]
        if assistant and isinstance(content, list):
            content = [{"annotations": [], **c} if isinstance(c, dict) and c.get("type") == "output_text" else c
                       for c in content]  # fmt: skip
        out["content"] = content
    if kind in ("message", "function_call", "function_call_output"):
        out.setdefault("status", "completed")
    return out


def page(items: list[dict[str, Any]], query: Mapping[str, list[str]]) -> dict[str, Any]:
    """OpenAI's list: ``order`` (default desc), ``after``/``before`` an item id, ``limit`` 1..100 (20)."""

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    order = one("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'", param="order")
    raw_limit = one("limit") or "20"
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("'limit' must be an integer from 1 to 100", param="limit")
    seq = items if order == "asc" else items[::-1]
    ids = [i["id"] for i in seq]
    after, before = one("after"), one("before")
    start, end = 0, len(seq)
    for name, ref in (("after", after), ("before", before)):
        if ref is not None and ref not in ids:
            raise InvalidRequest(f"'{name}': no input item {ref!r} in this response", param=name)
    if after is not None:
        start = ids.index(after) + 1
    if before is not None:
        end = ids.index(before)
    window = seq[start:end]
    if before is not None and after is None:
        data = window[-limit:]
        has_more = len(window) > limit
    else:
        data = window[:limit]
        has_more = len(window) > limit
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else "",
            "last_id": data[-1]["id"] if data else "", "has_more": has_more}  # fmt: skip
