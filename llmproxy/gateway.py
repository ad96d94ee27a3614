"""The whole pipeline on an immutable Runtime: authenticate, decode, route, send, translate.

``Gateway.handle`` takes one wire-level call (dialect, body bytes, headers) and returns
a reply or a stream in the caller's own dialect; it never raises for a client's or an
upstream's fault, and every call produces exactly one ``UsageEvent``. Nothing here
touches a database: everything read comes from the runtime snapshot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import formats
from ._json import dumps, loads, loads_body
from .errors import (
    AuthenticationFailed,
    InvalidRequest,
    LLMProxyError,
    ModelNotFound,
    PermissionDenied,
    ProviderError,
    ProviderHTTPError,
    ProviderProtocolError,
    RequestTooLarge,
)
from .http import HTTPClient, UpstreamReply
from .model import Request, StreamEnd, UsageUpdate
from .model import Usage as TokenUsage
from .routing import Candidate, Router
from .runtime import ApiKeyInfo, Runtime
from .usage import UsageEvent, UsageSink, discard

log = logging.getLogger("llmproxy.gateway")


@dataclass(slots=True)
class Call:
    """One client request as it came off the wire."""

    ingress: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    api_key: str | None = None
    model: str | None = None  # from the path (Gemini)
    stream: bool | None = None  # from the path (Gemini :streamGenerateContent)
    sse: bool = True  # Gemini streams: SSE or a JSON array
    request_id: str = ""


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamReply:
    status: int
    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


CONTENT_JSON = "application/json"
CONTENT_SSE = "text/event-stream"


@dataclass(slots=True)
class _Attempt:
    """Mutable bookkeeping for one call, turned into the UsageEvent at the end."""

    event: UsageEvent
    started: float
    request: Request | None = None


class Gateway:
    def __init__(
        self,
        runtime: Runtime | None = None,
        *,
        http: HTTPClient | None = None,
        usage_sink: UsageSink = discard,
        router: Router | None = None,
        max_attempts: int = 3,
        retry_budget: float = 30.0,
    ) -> None:
        self.runtime = runtime or Runtime()
        self.http = http or HTTPClient()
        self.usage_sink = usage_sink
        self.router = router or Router()
        self.max_attempts = max_attempts
        self.retry_budget = retry_budget

    def swap(self, runtime: Runtime) -> None:
        """Serve from a new snapshot; in-flight calls keep the one they started with."""
        self.runtime = runtime

    @classmethod
    def from_config(cls, path: str, **kwargs: Any) -> Gateway:
        from .config import load_runtime

        return cls(load_runtime(path), **kwargs)

    # -- library conveniences -----------------------------------------------------------
    async def chat(self, request: dict[str, Any], *, api_key: str | None = None) -> dict[str, Any]:
        """An OpenAI Chat request dict in, the completion dict out (raises LLMProxyError)."""
        return await self._call_json("openai_chat", {**request, "stream": False}, api_key)

    async def messages(self, request: dict[str, Any], *, api_key: str | None = None) -> dict[str, Any]:
        """An Anthropic Messages request dict in, the message dict out."""
        return await self._call_json("anthropic", {**request, "stream": False}, api_key)

    async def stream(self, request: dict[str, Any], *, api_key: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """An OpenAI Chat request dict in, OpenAI chunk dicts out."""
        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        result = await self.handle(Call("openai_chat", dumps(body), api_key=api_key))
        if isinstance(result, Reply):
            raise _error_from(result)
        from .sse import SSEParser

        parser = SSEParser()
        async for chunk in result.chunks:
            for ev in parser.feed(chunk):
                if ev.data and ev.data != "[DONE]":
                    data = loads(ev.data)
                    if "error" in data:
                        raise LLMProxyError(str(data["error"].get("message")), status=502)
                    yield data

    async def _call_json(self, ingress: str, body: dict[str, Any], api_key: str | None) -> dict[str, Any]:
        result = await self.handle(Call(ingress, dumps(body), api_key=api_key))
        assert isinstance(result, Reply)
        if result.status >= 400:
            raise _error_from(result)
        out: dict[str, Any] = loads(result.body)
        return out

    # -- authentication ----------------------------------------------------------------
    def authenticate(self, raw: str | None, runtime: Runtime | None = None) -> ApiKeyInfo | None:
        rt = runtime or self.runtime
        if not rt.require_keys:
            return None
        if not raw:
            raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'")
        info = rt.keys.get(hashlib.sha256(raw.encode()).hexdigest())
        if info is None:
            raise AuthenticationFailed("invalid API key")
        if info.revoked:
            raise AuthenticationFailed("this API key has been revoked")
        if not info.usable():
            raise AuthenticationFailed("this API key has expired")
        return info

    def models_for(self, key: ApiKeyInfo | None, runtime: Runtime | None = None) -> list[str]:
        rt = runtime or self.runtime
        return [m for m in rt.models() if key is None or key.allows(m)]

    # -- the pipeline --------------------------------------------------------------------
    async def handle(self, call: Call, endpoint: str = "chat") -> Reply | StreamReply:
        rt = self.runtime
        rid = call.request_id or uuid.uuid4().hex
        att = _Attempt(UsageEvent(request_id=rid, created_at=time.time(), ingress=call.ingress), time.monotonic())
        codec = formats.get(call.ingress)
        try:
            if len(call.body) > rt.max_body_bytes:
                raise RequestTooLarge(f"request body is larger than {rt.max_body_bytes} bytes")
            key = self.authenticate(call.api_key, rt)
            if key is not None:
                att.event.user_id, att.event.key_id, att.event.key_prefix = key.user_id, key.id, key.prefix
            body = loads_body(call.body)
            req = _decode(codec, body, call)
            att.request = req
            att.event.model, att.event.stream = req.model, req.stream
            if key is not None and not key.allows(req.model):
                raise PermissionDenied(f"this API key may not use model {req.model!r}")
            routes = rt.routes.get(req.model)
            if not routes:
                raise ModelNotFound(f"model {req.model!r} does not exist or is not served here", param="model")
            return await self._dispatch(rt, call, codec, body, req, att, endpoint)
        except LLMProxyError as err:
            return self._fail(codec, err, att)
        except Exception as exc:  # a bug of ours: answer cleanly, log the traceback
            log.exception("unexpected error in request %s", rid)
            return self._fail(codec, LLMProxyError(f"internal error ({type(exc).__name__})"), att)

    def _fail(self, codec: ModuleType, err: LLMProxyError, att: _Attempt) -> Reply:
        status, body = codec.error_body(err)
        headers = {"content-type": CONTENT_JSON}
        if err.retry_after is not None:
            headers["retry-after"] = str(max(1, int(-(-err.retry_after // 1))))
        att.event.status_code, att.event.error_type = status, err.code
        self._record(att)
        return Reply(status, dumps(body), headers)

    def _record(self, att: _Attempt, ttfb: float | None = None) -> None:
        ev = att.event
        ev.latency_ms = int((time.monotonic() - att.started) * 1000)
        if ttfb is not None:
            ev.ttfb_ms = int((ttfb - att.started) * 1000)
        try:
            self.usage_sink(ev)
        except Exception:
            log.exception("usage sink failed for %s", ev.request_id)

    async def _dispatch(
        self,
        rt: Runtime,
        call: Call,
        codec: ModuleType,
        body: dict[str, Any],
        req: Request,
        att: _Attempt,
        endpoint: str,
    ) -> Reply | StreamReply:
        deadline = time.monotonic() + self.retry_budget
        last: LLMProxyError | None = None
        cands = self.router.candidates(rt.routes[req.model])
        for n, cand in enumerate(cands[: self.max_attempts]):
            if n and time.monotonic() > deadline:
                break
            att.event.attempts = n + 1
            _set_route(att.event, cand)
            try:
                result = await self._attempt(rt, call, codec, body, req, cand, att, endpoint)
            except ProviderError as err:
                last = err
                self._after_failure(cand, err)
                if not err.retryable:
                    raise
                if n + 1 < min(len(cands), self.max_attempts):
                    await asyncio.sleep(min(0.05 * (2**n), 1.0) * random.random())
                continue
            self.router.succeed(cand)
            return result
        assert last is not None
        raise last

    def _after_failure(self, cand: Candidate, err: ProviderError) -> None:
        upstream = err.upstream_status if isinstance(err, ProviderHTTPError) else None
        if upstream == 429:
            base = cand.route.provider.cooldown
            seconds = err.retry_after if err.retry_after is not None else base * (2 ** min(self.router.failures(cand), 6))
            self.router.cool(cand, seconds, rate_limited=True)
        elif upstream in (401, 403):
            self.router.cool(cand, 60.0, rate_limited=False)
        elif upstream == 404:
            self.router.cool(cand, 300.0, rate_limited=False)
        elif err.retryable:
            self.router.cool(cand, min(5.0 * (2 ** min(self.router.failures(cand), 4)), 60.0), rate_limited=False)

    async def _attempt(
        self,
        rt: Runtime,
        call: Call,
        codec: ModuleType,
        body: dict[str, Any],
        req: Request,
        cand: Candidate,
        att: _Attempt,
        endpoint: str,
    ) -> Reply | StreamReply:
        executor = rt.executors[cand.route.provider.name]
        passthrough = executor.dialect == call.ingress
        upstream_codec = codec if passthrough else formats.get(executor.dialect)
        if passthrough:
            out_body = dict(body)
            if call.ingress == "gemini":
                out_body.pop("model", None)
        else:
            out_body = upstream_codec.encode_request(dataclasses.replace(req, model=cand.route.upstream_model))
        ureq = executor.build(
            cand.credential,
            out_body,
            model=cand.route.upstream_model,
            stream=req.stream,
            client_headers=call.headers,
            endpoint=endpoint,
        )
        reply = await self.http.send(ureq)
        if reply.status >= 400:
            data = await reply.read()
            raise executor.classify(reply.status, reply.headers, data)
        headers = {"x-request-id": att.event.request_id, "x-llmproxy-provider": cand.route.provider.name,
                   "x-llmproxy-attempts": str(att.event.attempts)}  # fmt: skip
        if not req.stream:
            return await self._complete(reply, codec, upstream_codec, passthrough, req, cand, att, headers)
        return await self._stream(reply, call, codec, upstream_codec, passthrough, req, cand, att, headers)

    async def _complete(
        self,
        reply: UpstreamReply,
        codec: ModuleType,
        upstream_codec: ModuleType,
        passthrough: bool,
        req: Request,
        cand: Candidate,
        att: _Attempt,
        headers: dict[str, str],
    ) -> Reply:
        raw = await reply.read()
        try:
            data = loads(raw)
        except ValueError:
            raise ProviderProtocolError(f"{cand.route.provider.name}: upstream reply is not JSON") from None
        if not isinstance(data, dict):
            raise ProviderProtocolError(f"{cand.route.provider.name}: upstream reply is not a JSON object")
        resp = upstream_codec.decode_response(data)
        if passthrough:
            _set_model(data, req.model)
            out = dumps(data)
        else:
            resp.model = req.model
            out = dumps(codec.encode_response(resp))
        self._settle(att, resp.usage, cand, 200, "")
        self._record(att)
        headers["content-type"] = CONTENT_JSON
        return Reply(200, out, headers)

    def _settle(self, att: _Attempt, usage: TokenUsage | None, cand: Candidate, status: int, error: str) -> None:
        ev = att.event
        ev.status_code, ev.error_type = status, error
        if usage is not None:
            ev.usage = usage
            price = cand.route.price
            if price is not None:
                ev.cost_usd = price.cost(usage.input_tokens, usage.output_tokens, usage.cached_tokens)

    async def _stream(
        self,
        reply: UpstreamReply,
        call: Call,
        codec: ModuleType,
        upstream_codec: ModuleType,
        passthrough: bool,
        req: Request,
        cand: Candidate,
        att: _Attempt,
        headers: dict[str, str],
    ) -> StreamReply:
        chunks = reply.iter_chunks()
        # Read the first chunk before committing: a stream that breaks at once fails over.
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""
        except ProviderError:
            reply.close()
            raise
        decoder = upstream_codec.StreamDecoder()
        encoder = _encoder(codec, req, call, att.event.request_id)
        headers["content-type"] = CONTENT_SSE if call.sse else CONTENT_JSON
        headers["cache-control"] = "no-cache"
        up_model, rename = cand.route.upstream_model, cand.route.upstream_model != req.model
        gateway = self

        async def relay() -> AsyncIterator[bytes]:
            usage: TokenUsage | None = None
            status, error, ttfb = 200, "", None
            try:
                pending: list[bytes] = [first] if first else []
                while True:
                    for chunk in pending:
                        try:
                            events = decoder.feed(chunk)
                        except ProviderError as err:
                            if not passthrough:
                                raise
                            events, status, error = [], 502, err.code
                        if passthrough:
                            out = _rename(chunk, up_model, req.model) if rename else chunk
                        else:
                            out = b"".join(encoder.encode(e) for e in events)
                        for e in events:
                            if isinstance(e, (UsageUpdate, StreamEnd)) and e.usage is not None:
                                usage = e.usage
                        if out:
                            if ttfb is None:
                                ttfb = time.monotonic()
                            yield out
                    try:
                        pending = [await chunks.__anext__()]
                    except StopAsyncIteration:
                        break
                tail = decoder.close()
                for e in tail:
                    if isinstance(e, (UsageUpdate, StreamEnd)) and e.usage is not None:
                        usage = e.usage
                if not passthrough:
                    out = b"".join(encoder.encode(e) for e in tail)
                    if out:
                        yield out
            except ProviderError as err:
                status, error = err.status, err.code
                yield encoder.error(err)
            except (asyncio.CancelledError, GeneratorExit):
                status, error = 499, "client_disconnected"
                raise
            finally:
                reply.close()
                gateway._settle(att, usage, cand, status, error)
                gateway._record(att, ttfb)

        return StreamReply(200, relay(), headers)


def _error_from(reply: Reply) -> LLMProxyError:
    try:
        data = loads(reply.body)
        err = data.get("error") or {}
        message = err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        message = None
    return LLMProxyError(str(message or f"HTTP {reply.status}"), status=reply.status)


def _decode(codec: ModuleType, body: dict[str, Any], call: Call) -> Request:
    if call.ingress == "gemini":
        req: Request = codec.decode_request(body, model=call.model)
    else:
        req = codec.decode_request(body)
    if call.stream is not None:
        req.stream = call.stream
    if not isinstance(req.model, str) or not req.model:
        raise InvalidRequest("'model' is required", param="model")
    return req


def _encoder(codec: ModuleType, req: Request, call: Call, request_id: str) -> Any:
    if call.ingress == "gemini":
        return codec.StreamEncoder(model=req.model, include_usage=True, request_id=request_id, sse=call.sse)
    return codec.StreamEncoder(model=req.model, include_usage=req.include_usage, request_id=request_id)


def _set_route(ev: UsageEvent, cand: Candidate) -> None:
    ev.provider = cand.route.provider.name
    ev.credential = cand.credential.name
    ev.upstream_model = cand.route.upstream_model


def _set_model(data: dict[str, Any], model: str) -> None:
    if "model" in data:
        data["model"] = model
    if "modelVersion" in data:
        data["modelVersion"] = model
    inner = data.get("response")
    if isinstance(inner, dict) and "model" in inner:
        inner["model"] = model


def _rename(chunk: bytes, upstream: str, public: str) -> bytes:
    """Replace the upstream model name with the public one in a passthrough chunk."""
    up, pub = upstream.encode(), public.encode()
    for key in (b'"model":"', b'"model": "', b'"modelVersion":"', b'"modelVersion": "'):
        chunk = chunk.replace(key + up + b'"', key + pub + b'"')
    return chunk
