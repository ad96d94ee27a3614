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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from . import formats
from ._json import dumps, loads, loads_body
from .errors import (
    AuthenticationFailed,
    InvalidRequest,
    LLMProxyError,
    ModelNotFound,
    PermissionDenied,
    ProviderError,
    ProviderProtocolError,
    RequestTooLarge,
)
from .http import HTTPClient, UpstreamReply
from .images import inline_images
from .limits import Limiter, estimate_tokens
from .model import Request, StreamEnd, UsageUpdate
from .model import Usage as TokenUsage
from .outcome import Outcome, classify, reset_after
from .providers.base import Credential
from .routing import Candidate, Plan, Router
from .runtime import ApiKeyInfo, Runtime
from .state import StateStore
from .usage import UsageEvent, UsageSink, discard

log = logging.getLogger("llmproxy.gateway")
_T = TypeVar("_T")


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
    key: ApiKeyInfo | None = None
    plan: Plan | None = None


class Gateway:
    def __init__(
        self,
        runtime: Runtime | None = None,
        *,
        http: HTTPClient | None = None,
        usage_sink: UsageSink = discard,
        router: Router | None = None,
        store: StateStore | None = None,
        refresher: Callable[[Credential], Awaitable[None]] | None = None,
        max_attempts: int | None = None,
        retry_budget: float | None = None,
    ) -> None:
        """``store`` shares limits, cooldowns and round-robin with other processes (Redis);
        ``refresher`` is called (in the background) for an OAuth credential an upstream
        refused; ``max_attempts``/``retry_budget`` override the snapshot's ``routing``."""
        self.runtime = runtime or Runtime()
        self.http = http or HTTPClient()
        self.usage_sink = usage_sink
        self.router = router or Router(store)
        self.limiter = Limiter(self.router.store, clock=self.router.clock)
        self.refresher = refresher
        self._max_attempts = max_attempts
        self._retry_budget = retry_budget
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def max_attempts(self) -> int:
        return self._max_attempts if self._max_attempts is not None else self.runtime.routing.max_attempts

    @property
    def retry_budget(self) -> float:
        return self._retry_budget if self._retry_budget is not None else self.runtime.routing.retry_budget

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
            att.key = key
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
        if att.event.attempts:
            headers["x-llmproxy-provider"] = att.event.provider
            headers["x-llmproxy-attempts"] = str(att.event.attempts)
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
        estimate = estimate_tokens(call.body)
        await self.limiter.admit(att.key, estimate)

        async def attempt(cand: Candidate) -> Reply | StreamReply:
            return await self._attempt(rt, call, codec, body, req, cand, att, endpoint)

        return await self.failover(rt, req.model, att, attempt, tokens=estimate, session=_session(call, req))

    async def failover(
        self,
        rt: Runtime,
        model: str,
        att: _Attempt,
        attempt: Callable[[Candidate], Awaitable[_T]],
        *,
        tokens: int = 0,
        session: str | None = None,
    ) -> _T:
        """Run ``attempt`` on the candidates for ``model`` until one succeeds.

        Candidates in cooldown or over a limit are skipped; a retryable ``ProviderError``
        cools its candidate and moves on after a jittered backoff, within the attempt
        count and time budget. Raises the last error, or ``NoRouteAvailable`` (429/503 with
        the soonest recovery) when no candidate is left. Side endpoints use it too.
        """
        plan = await self.router.plan(rt.routes[model], rt.routing, session=session, tokens=tokens,
                                      unhealthy=rt.unhealthy)  # fmt: skip
        att.plan = plan
        deadline = time.monotonic() + self.retry_budget
        last: ProviderError | None = None
        tried, stopped = 0, False
        for cand in plan.candidates:
            if tried >= self.max_attempts or (tried and time.monotonic() > deadline):
                stopped = True
                break
            if await self.router.acquire(plan, cand) > 0:
                continue  # over a limit or another request holds its trial: skipped, not failed
            if tried:
                pause = min(rt.routing.backoff_base * 2 ** (tried - 1), rt.routing.backoff_max) * random.random()
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            tried += 1
            att.event.attempts = tried
            _set_route(att.event, cand)
            try:
                result = await attempt(cand)
            except ProviderError as err:
                last = err
                if not (await self._after_failure(plan, cand, err)).retry:
                    raise
                continue
            await self.router.succeed(plan, cand)
            return result
        if last is not None and stopped:
            raise last  # out of attempts or time with candidates left: the upstream's own answer
        detail = f" (last error: {last.message})" if last is not None else ""
        raise plan.unavailable(self.router.clock(), detail)

    async def _after_failure(self, plan: Plan, cand: Candidate, err: ProviderError) -> Outcome:
        outcome = classify(err, cand.route.provider, plan.settings)
        await self.router.fail(plan, cand, outcome)
        log.info("attempt on %s failed: %s (%s)", cand.key, err.message, outcome.reason)
        if outcome.refresh and self.refresher is not None and cand.credential.refresh_token:
            self._spawn(self.refresher(cand.credential))
        return outcome

    def _spawn(self, coro: Awaitable[object]) -> None:
        """Run bookkeeping in the background, keeping a reference until it is done."""

        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("background routing bookkeeping failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            if executor.dialect == "gemini":
                # Gemini takes no image URLs: fetch and inline them (size-capped) once.
                await inline_images(req, self.http)
            # ``extra`` holds the ingress dialect's own fields: meaningless to another dialect.
            out_body = upstream_codec.encode_request(
                dataclasses.replace(req, model=cand.route.upstream_model, extra={})
            )
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
            err = executor.classify(reply.status, reply.headers, data)
            if reply.status == 429 and err.retry_after is None:
                err.retry_after = reset_after(reply.headers, data, time.time())
            raise err
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
            if att.plan is not None:
                self._spawn(self._settle_limits(att, cand, usage.input_tokens + usage.output_tokens, ev.cost_usd))

    async def _settle_limits(self, att: _Attempt, cand: Candidate, tokens: int, cost: float | None) -> None:
        assert att.plan is not None
        await self.router.settle(att.plan, cand, tokens)
        await self.limiter.settle(att.key, att.plan.tokens, tokens, cost)

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
            relayed: ProviderError | None = None  # the upstream's own error event, passed through as is
            try:
                pending: list[bytes] = [first] if first else []
                while True:
                    for chunk in pending:
                        try:
                            events = decoder.feed(chunk)
                        except ProviderError as err:
                            if not passthrough:
                                raise
                            events, status, error, relayed = [], 502, err.code, relayed or err
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
                if relayed is not None:
                    # The client already holds the upstream's error event: another would end the stream twice.
                    if att.plan is not None:
                        gateway._spawn(gateway._after_failure(att.plan, cand, relayed))
                    return
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
                if att.plan is not None:  # after the first byte: an error event, and the credential cools
                    gateway._spawn(gateway._after_failure(att.plan, cand, err))
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


def _session(call: Call, req: Request) -> str | None:
    """What ties requests of one conversation together, for session affinity."""
    for name in ("x-llmproxy-session", "x-session-id"):
        if call.headers.get(name):
            return call.headers[name]
    user_id = req.metadata.get("user_id") if isinstance(req.metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        return user_id  # Claude Code puts its session id here
    cache_key = req.extra.get("prompt_cache_key") if isinstance(req.extra, dict) else None
    if isinstance(cache_key, str) and cache_key:
        return cache_key
    return req.user or None


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
