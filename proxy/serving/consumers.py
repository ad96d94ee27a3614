"""Channels consumers for the LLM endpoints: parse the wire, call the gateway, stream back.

Written on ``AsyncConsumer`` so that ``http.disconnect`` is seen while a reply streams
(``AsyncHttpConsumer`` processes one message at a time: django/channels#1350): the
response runs as a task, a disconnect cancels it, and the gateway records the partial
usage. No Django view or middleware runs here, and no database query, which is why
``__call__`` and ``dispatch`` skip Channels' per-message ``aclose_old_connections`` (a
thread-pool hop for each message, ~13% of a core at load) and its task-per-receive
``await_many_dispatch``: the handlers and their names are Channels' own.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import parse_qs

import orjson
from channels.consumer import AsyncConsumer, StopConsumer, get_handler_name

from llmproxy import formats, side_calls
from llmproxy.errors import AuthenticationFailed, LimitExceeded, LLMProxyError, RequestTooLarge
from llmproxy.gateway import Call, Reply, StreamReply
from llmproxy.overrides import NAMES as OVERRIDE_NAMES
from llmproxy.throttle import client_address

from .process_engine import get_engine
from .usage_journal import full_error


def client_key(headers: dict[str, str], query: dict[str, list[str]]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    for name in ("x-api-key", "x-goog-api-key"):
        if headers.get(name):
            return headers[name].strip()
    keys = query.get("key")
    return keys[0] if keys else None


class LLMConsumer(AsyncConsumer):  # type: ignore[misc]  # channels ships no types
    """One HTTP request on an LLM route. ``ingress``/``endpoint`` come from the route."""

    channel_layer_alias = "__none__"  # no channel layer: nothing to subscribe to

    def __init__(self, ingress: str = "openai_chat", endpoint: str = "chat", **kwargs: Any) -> None:
        super().__init__()
        self.ingress = ingress
        self.endpoint = endpoint
        self.kwargs = kwargs
        self.body: list[bytes] = []
        self.size = 0
        self.task: asyncio.Task[None] | None = None
        self.too_large = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def http_request(self, message: dict[str, Any]) -> None:
        chunk = message.get("body", b"")
        engine = get_engine()
        await engine.ensure_started()
        self.size += len(chunk)
        if self.size > engine.gateway.runtime.max_body_bytes:
            self.too_large = True
        elif chunk:
            self.body.append(chunk)
        if message.get("more_body"):
            return
        self.task = asyncio.get_running_loop().create_task(self.respond())

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        raise StopConsumer()

    def headers(self) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.scope["headers"]}

    def client(self, headers: dict[str, str]) -> str:
        """The client's address: the peer, or behind a trusted proxy (``clients.trusted_proxies``) its X-Forwarded-For."""
        peer = self.scope.get("client")
        addr = str(peer[0]) if peer else ""
        return client_address(addr, headers.get("x-forwarded-for"), get_engine().gateway.runtime.clients)

    def request_id(self, headers: dict[str, str]) -> str:
        rid = headers.get("x-request-id", "")
        # 32 random hex digits like uuid4().hex, without the UUID object (a few µs per request).
        return rid if 0 < len(rid) <= 64 and rid.isascii() else os.urandom(16).hex()

    async def respond(self) -> None:
        headers = self.headers()
        qs = self.scope.get("query_string", b"")
        query = parse_qs(qs.decode("latin-1")) if qs else {}
        rid = self.request_id(headers)
        engine = get_engine()
        gateway = engine.gateway
        if engine.journal.full():  # backpressure: a request that could not be recorded is not taken
            await self.send_error(full_error(), rid)
            return
        if self.too_large:
            err = RequestTooLarge(f"request body is larger than {gateway.runtime.max_body_bytes} bytes")
            await self.send_error(err, rid)
            return
        call = Call(
            ingress=self.ingress,
            body=b"".join(self.body),
            headers=headers,
            api_key=client_key(headers, query),
            model=self.kwargs.get("model"),
            stream=self.kwargs.get("stream"),
            sse=query.get("alt", [""])[0] == "sse"
            if formats.traits(formats.get(self.ingress)).json_array_streams
            else True,
            request_id=rid,
            query={name: query[name][0] for name in OVERRIDE_NAMES if name in query} if query else {},
            client=self.client(headers),
        )
        result = await self.dispatch_call(call, headers, query)
        result.headers.setdefault("x-request-id", rid)
        if isinstance(result, Reply):
            await self.send_reply(result)
            return
        await self.send({"type": "http.response.start", "status": result.status, "headers": _headers(result.headers)})
        try:
            send = self.base_send  # per chunk: skip AsyncConsumer.send's extra coroutine
            async for chunk in result.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            try:
                await self.send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:
                pass

    async def dispatch_call(
        self, call: Call, headers: dict[str, str], query: dict[str, list[str]]
    ) -> Reply | StreamReply:
        gateway = get_engine().gateway
        if self.endpoint == "count_tokens":
            return await side_calls.count_tokens(gateway, call)
        if self.endpoint == "embeddings":
            return await side_calls.embeddings(gateway, call)
        return await gateway.handle(call, self.endpoint)

    async def send_reply(self, reply: Reply) -> None:
        await self.send({"type": "http.response.start", "status": reply.status, "headers": _headers(reply.headers)})
        await self.send({"type": "http.response.body", "body": reply.body})

    async def send_error(self, err: LLMProxyError, rid: str) -> None:
        status, body = formats.get(self.ingress).error_body(err)
        await self.send_reply(
            Reply(status, orjson.dumps(body), {"content-type": "application/json", "x-request-id": rid})
        )


class ModelsConsumer(LLMConsumer):
    """``GET /v1/models`` (OpenAI; Anthropic with ``anthropic-version``; Gemini with a Gemini key) and ``/v1beta/models``."""

    async def dispatch_call(
        self, call: Call, headers: dict[str, str], query: dict[str, list[str]]
    ) -> Reply | StreamReply:
        gateway = get_engine().gateway
        rt = gateway.runtime
        style = self.ingress
        if style == "openai_chat" and "anthropic-version" in headers:
            style = "anthropic"
        elif style == "openai_chat" and ("x-goog-api-key" in headers or "key" in query):
            style = "gemini"  # google-genai lists models at /v1/models by default
        try:
            key = await gateway.admit(call, rt)
        except (AuthenticationFailed, LimitExceeded) as err:
            status, body = formats.get(style).error_body(err)
            headers = {"content-type": "application/json"}
            if err.retry_after is not None:
                headers["retry-after"] = str(max(1, int(-(-err.retry_after // 1))))
            return Reply(status, orjson.dumps(body), headers)
        models = gateway.models_for(key, rt)
        body = formats.get(style).models_body(models)
        return Reply(200, orjson.dumps(body), {"content-type": "application/json"})


class StoredResponsesConsumer(LLMConsumer):
    """``GET``/``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items`` (stored responses)."""

    async def dispatch_call(
        self, call: Call, headers: dict[str, str], query: dict[str, list[str]]
    ) -> Reply | StreamReply:
        gateway = get_engine().gateway
        return await gateway.stored_response(call, self.kwargs["action"], self.kwargs["response_id"], query)


def _headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
