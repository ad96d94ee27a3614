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
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from . import formats, issuers, logfmt, overrides, upstream
from ._json import dumps, loads, loads_body
from .affinity import Session, session_of
from .auth import TokenKeeper, write_back
from .bookkeeping import Books
from .config import Config, build_runtime
from .config import load as load_config
from .conversations import INGRESS as RESPONSES
from .conversations import Conversations, owner_of
from .errors import (
    AuthenticationFailed,
    InvalidRequest,
    LimitExceeded,
    LLMProxyError,
    ModelNotFound,
    PermissionDenied,
    ProviderError,
    ProviderHTTPError,
    RequestTooLarge,
)
from .estimate import estimate
from .exchange import CONTENT_JSON, CONTENT_SSE, Call, Exchange, Reply, StreamReply
from .http import HTTPClient, UpstreamReply, UpstreamRequest
from .images import inline_images
from .limits import Limiter, estimate_tokens
from .model import Request
from .model import Usage as TokenUsage
from .overrides import NONE, Overrides
from .providers.base import Credential, StreamFilter
from .relay import StreamRelay
from .responses_store import MemoryResponseStore, ResponseStore
from .routing import Router
from .runtime import ApiKeyInfo, Runtime
from .state import StateStore
from .synthesizer import Synthesizer, synthesize
from .throttle import AuthThrottle
from .tokens import count_reply
from .usage import UsageSink, discard

__all__ = ["CONTENT_JSON", "CONTENT_SSE", "Call", "Exchange", "Gateway", "Reply", "StreamReply"]

log = logging.getLogger("llmproxy.gateway")
_T = TypeVar("_T")


class Gateway:
    """One process's front to the engine; ``handle`` serves a call on the current snapshot."""

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
        tokens: TokenKeeper | None = None,
        responses: ResponseStore | None = None,
    ) -> None:
        """``store`` shares limits, cooldowns and round-robin with other processes (Redis);
        ``refresher`` is called (in the background) for an OAuth credential an upstream
        refused; ``max_attempts``/``retry_budget`` override the snapshot's ``routing``;
        ``tokens`` keeps account tokens fresh (default: one on ``store`` that writes
        refreshed tokens back to their token file); ``responses`` keeps the Responses API's
        stored responses (default: this process's memory)."""
        self.runtime = runtime or Runtime()
        self.http = http or HTTPClient()
        self.router = router or Router(store)
        self.limiter = Limiter(self.router.store, clock=self.router.clock)
        self.throttle = AuthThrottle(self.router.store, clock=self.router.clock)
        self.books = Books(self.router, self.limiter, usage_sink, refresher)
        self.tokens = tokens or TokenKeeper(self.router.store, self.http, on_refreshed=write_back)
        self.conversations = Conversations(responses or MemoryResponseStore())
        self._max_attempts = max_attempts
        self._retry_budget = retry_budget

    @property
    def usage_sink(self) -> UsageSink:
        return self.books.usage_sink

    @usage_sink.setter
    def usage_sink(self, sink: UsageSink) -> None:
        self.books.usage_sink = sink

    @property
    def max_attempts(self) -> int:
        return self._max_attempts if self._max_attempts is not None else self.runtime.routing.max_attempts

    @property
    def retry_budget(self) -> float:
        return self._retry_budget if self._retry_budget is not None else self.runtime.routing.retry_budget

    @property
    def max_timeout(self) -> float:
        """The configured upstream timeout (the HTTP client's): the most a ``timeout`` override may ask."""
        t = self.http.timeouts
        return max(t.first_byte, t.read)

    def swap(self, runtime: Runtime) -> None:
        """Serve from a new snapshot; in-flight calls keep the one they started with."""
        self.runtime = runtime

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str],
        *,
        synthesizer: Synthesizer | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Gateway:
        """Load config.yaml, pass it through ``synthesizer`` (default: unchanged) and serve it.

        Library mode: no API keys are required. ``env`` replaces ``os.environ`` for
        ``${VAR}`` and ``LLMPROXY_*`` overrides (tests pass their own).
        """
        config = synthesize(load_config(os.fspath(path), env=env), synthesizer, env)
        return cls(build_runtime(config, require_keys=False), **kwargs)

    def apply(self, config: Config) -> None:
        """Serve a new config (a ``Watcher``'s ``on_change``); keys stay optional, as in ``from_config``."""
        self.swap(build_runtime(config, require_keys=False, version=self.runtime.version + 1))

    # -- library conveniences -----------------------------------------------------------
    async def chat(
        self, request: dict[str, Any], *, api_key: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """An OpenAI Chat request dict in, the completion dict out (raises LLMProxyError).

        ``overrides``: per-request overrides, ``{"provider": ..., "timeout": ..., "retries": ...}``.
        """
        return await self._call_json("openai_chat", {**request, "stream": False}, api_key, overrides)

    async def messages(
        self, request: dict[str, Any], *, api_key: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """An Anthropic Messages request dict in, the message dict out."""
        return await self._call_json("anthropic", {**request, "stream": False}, api_key, overrides)

    async def respond(
        self, request: dict[str, Any], *, api_key: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """An OpenAI Responses request dict in, the response dict out; with ``store`` (the default)
        it is kept, and ``previous_response_id``/``item_reference`` resolve from what was kept."""
        return await self._call_json(RESPONSES, {**request, "stream": False}, api_key, overrides)

    async def stream(
        self, request: dict[str, Any], *, api_key: str | None = None, overrides: Mapping[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """An OpenAI Chat request dict in, OpenAI chunk dicts out."""
        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        result = await self.handle(Call("openai_chat", dumps(body), api_key=api_key, overrides=overrides))
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

    async def _call_json(
        self, ingress: str, body: dict[str, Any], api_key: str | None, given: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        result = await self.handle(Call(ingress, dumps(body), api_key=api_key, overrides=given))
        assert isinstance(result, Reply)
        if result.status >= 400:
            raise _error_from(result)
        out: dict[str, Any] = loads(result.body)
        return out

    async def stored_response(
        self, call: Call, action: str, response_id: str, query: Mapping[str, list[str]] | None = None
    ) -> Reply:
        """A stored Responses API response of the call's key: ``action`` is ``get``, ``delete``
        or ``input_items`` (``query``: ``after``, ``before``, ``limit``, ``order``); another
        key's, an expired or an unknown one is a 404, in OpenAI's error format."""
        rid = call.request_id or os.urandom(16).hex()
        try:
            key = await self.admit(call)
        except (AuthenticationFailed, LimitExceeded) as err:
            status, body = formats.get(RESPONSES).error_body(err)
            headers = {"content-type": CONTENT_JSON, "x-request-id": rid}
            if err.retry_after is not None:
                headers["retry-after"] = str(max(1, int(-(-err.retry_after // 1))))
            return Reply(status, dumps(body), headers)
        return await self.conversations.serve(owner_of(key), action, response_id, query or {}, rid)

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

    def check_overrides(self, ex: Exchange) -> Overrides:
        """The call's per-request overrides, checked: 403 for a key without the right, 400 for a bad value."""
        call = ex.call
        raw = overrides.requested(call.headers, call.query, call.overrides)
        if not raw:
            return NONE
        if ex.key is not None and not ex.key.may_override:
            names = ", ".join(n for n in overrides.NAMES if n in raw)
            raise PermissionDenied(f"this API key may not use per-request overrides ({names}); "
                                   "a key needs allow_overrides or the management scope",
                                   code="overrides_not_allowed")  # fmt: skip
        checked = overrides.parse(raw, max_timeout=self.max_timeout, max_attempts=self.max_attempts)
        ex.use_overrides(checked)
        return checked

    async def admit(self, call: Call, runtime: Runtime | None = None) -> ApiKeyInfo | None:
        """``authenticate`` the call's key; a failure from an address over its failure budget is a 429."""
        rt = runtime or self.runtime
        try:
            return self.authenticate(call.api_key, rt)
        except AuthenticationFailed:
            wait = await self.throttle.failed(call.client, rt.clients)
            if wait > 0:
                raise LimitExceeded(
                    "too many failed API key attempts from this address; retry later",
                    code="too_many_key_failures",
                    retry_after=wait,
                ) from None
            raise

    def models_for(self, key: ApiKeyInfo | None, runtime: Runtime | None = None) -> list[str]:
        rt = runtime or self.runtime
        return [m for m in rt.models() if key is None or key.allows(m)]

    # -- the pipeline --------------------------------------------------------------------
    async def handle(self, call: Call, endpoint: str = "chat") -> Reply | StreamReply:
        rt = self.runtime
        ex = Exchange.open(call, rt, formats.get(call.ingress), endpoint)
        logfmt.request_id.set(ex.request_id)  # log lines from here on name this request
        try:
            if len(call.body) > rt.max_body_bytes:
                raise RequestTooLarge(f"request body is larger than {rt.max_body_bytes} bytes")
            ex.identify(await self.admit(call, rt))
            self.check_overrides(ex)
            ex.body = loads_body(call.body)
            if call.ingress == RESPONSES and endpoint == "chat":
                await self.conversations.prepare(ex)  # previous_response_id, item_reference
            req = self.decode(ex)
            ex.event.model, ex.event.stream = req.model, req.stream
            self.check_model(ex, req.model)
            tokens = await self.reserve(ex, req)
            session = session_of(call.headers, req, ex.event.key_id)
            return await self.failover(ex, req.model, self._attempt, tokens=tokens, session=session)
        except LLMProxyError as err:
            return self.books.fail(ex, err)
        except Exception as exc:  # a bug of ours: answer cleanly, log the traceback
            log.exception("unexpected error in request %s", ex.request_id)
            return self.books.fail(ex, LLMProxyError(f"internal error ({type(exc).__name__})"))

    @staticmethod
    def decode(ex: Exchange) -> Request:
        """The client's body (``ex.body``) -> the canonical request, kept on ``ex``."""
        call = ex.call
        if ex.traits.model_in_path:
            req: Request = ex.codec.decode_request(ex.body, model=call.model)
        else:
            req = ex.codec.decode_request(ex.body)
        if call.stream is not None:
            req.stream = call.stream
        if not isinstance(req.model, str) or not req.model:
            raise InvalidRequest("'model' is required", param="model")
        ex.request = req
        return req

    async def reserve(self, ex: Exchange, req: Request | None, model: str = "") -> int:
        """Hold the call's estimate on its key's and user's limits (``ex.reservation``, ended
        when the call is recorded); raises ``LimitExceeded``. Returns the prompt tokens."""
        rt = ex.runtime
        self.limiter.configure(rt.limits)
        tokens, cost = estimate_tokens(ex.call.body), 0.0
        if self.limiter.wants_cost(ex.key):
            routes = ex.routes_for(req.model if req is not None else model)
            if req is not None:
                est = estimate(req, routes, default_output=rt.limits.default_output_tokens)
                tokens, cost = est.prompt_tokens, est.cost_usd
                ex.prompt_tokens = est.prompt_tokens  # the usage fill-in needs no second count
            else:  # embeddings: the input is all there is to pay for
                cost = max((r.price.cost(tokens, 0, 0) for r in routes if r.price is not None), default=0.0)
        ex.reservation = await self.limiter.reserve(ex.key, tokens=tokens, cost=cost, request_id=ex.request_id)
        return tokens

    @staticmethod
    def check_model(ex: Exchange, model: str) -> None:
        """The key may use ``model`` and the snapshot serves it (from the overriding provider, if
        any), or the matching 403/404."""
        if ex.key is not None and not ex.key.allows(model):
            raise PermissionDenied(f"this API key may not use model {model!r}")
        if not ex.runtime.routes.get(model):
            raise ModelNotFound(f"model {model!r} does not exist or is not served here", param="model")
        if not ex.routes_for(model):
            raise ModelNotFound(f"provider {ex.overrides.provider!r} does not serve model {model!r}",
                                param="provider")  # fmt: skip

    async def failover(
        self,
        ex: Exchange,
        model: str,
        attempt: Callable[[Exchange], Awaitable[_T]],
        *,
        tokens: int = 0,
        session: Session | str | None = None,
    ) -> _T:
        """Run ``attempt`` on the candidates for ``model`` until one succeeds.

        Candidates in cooldown or over a limit are skipped; a retryable ``ProviderError``
        cools its candidate and moves on after a jittered backoff, within the attempt
        count and time budget. Each try sees its candidate on ``ex`` (``begin_attempt``).
        Raises the last error, or ``NoRouteAvailable`` (429/503 with the soonest
        recovery) when no candidate is left. Side endpoints use it too.
        """
        rt = ex.runtime
        if isinstance(session, str):
            session = Session(session)
        plan = await self.router.plan(ex.routes_for(model), rt.routing, session=session.key if session else None,
                                      follow=session.follow if session else True, tokens=tokens,
                                      unhealthy=rt.unhealthy)  # fmt: skip
        ex.plan = plan
        budget = self.retry_budget if ex.overrides.timeout is None else min(self.retry_budget, ex.overrides.timeout)
        deadline = time.monotonic() + budget
        max_attempts = ex.overrides.attempts(self.max_attempts)
        last: ProviderError | None = None
        tried, stopped = 0, False
        for cand in plan.candidates:
            if tried >= max_attempts or (tried and time.monotonic() > deadline):
                stopped = True
                break
            if await self.router.acquire(plan, cand) > 0:
                continue  # over a limit or another request holds its trial: skipped, not failed
            if tried:
                pause = min(rt.routing.backoff_base * 2 ** (tried - 1), rt.routing.backoff_max) * random.random()
                await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            tried += 1
            ex.begin_attempt(cand, tried)
            try:
                result = await attempt(ex)
            except ProviderError as err:
                last = err
                ex.note_failure(err)
                if not ex.cools(err):
                    raise  # the client's own shortened timeout: its answer, and no cooldown for others
                if not (await self.books.after_failure(plan, cand, err)).retry:
                    raise
                continue
            await self.router.succeed(plan, cand)
            await issuers.record(self.router.store, plan.session, ex.dialect, cand.credential_key)
            return result
        if last is not None and stopped:
            raise last  # out of attempts or time with candidates left: the upstream's own answer
        # What failed goes to the usage record (``ex.failures``), not into the client's message.
        raise plan.unavailable(self.router.clock())

    async def _attempt(self, ex: Exchange) -> Reply | StreamReply:
        """One try on ``ex.candidate``: encode, send, and read or start relaying the reply."""
        req, cand, executor = ex.request, ex.candidate, ex.executor
        assert req is not None and cand is not None and executor is not None
        cred = await self.tokens.for_call(cand.route.provider, cand.credential)  # waits for one shared refresh
        ex.use_credential(cred)
        assert ex.upstream_codec is not None
        if ex.passthrough:
            fix = getattr(ex.codec, "passthrough_body", None)
            out_body = dict(fix(ex.body) if fix is not None else ex.body)
            if ex.traits.model_in_path:
                out_body.pop("model", None)
        else:
            if formats.traits(ex.upstream_codec).inline_images:
                await inline_images(req, settings=ex.runtime.images)  # fetched (guarded) and inlined once
            # ``extra`` holds the ingress dialect's own fields: meaningless to another dialect.
            carry = ex.dialect == "openai_chat" and executor.carries_cache_control(cand.route.upstream_model)
            out_body = ex.upstream_codec.encode_request(
                dataclasses.replace(req, model=cand.route.upstream_model, extra={}),
                **({"cache_control": True} if carry else {}),
            )
        if ex.plan is not None and await issuers.foreign(self.router.store, ex.plan.session, ex.dialect,
                                                        cand.credential_key):  # fmt: skip
            out_body = issuers.strip(out_body, ex.dialect)  # another account's signatures: docs/routing.md
        reply = await self._send(ex, cred, out_body)
        if not req.stream:
            return await self._complete(ex, reply)
        return await self._stream(ex, reply)

    async def _send(self, ex: Exchange, cred: Credential, body: dict[str, Any]) -> UpstreamReply:
        """Build and send; a refused account token is refreshed once and the call sent again."""
        req, cand, executor = ex.request, ex.candidate, ex.executor
        assert req is not None and cand is not None and executor is not None
        provider = cand.route.provider
        timeouts = ex.timeouts(self.http.timeouts)

        def build(c: Credential) -> UpstreamRequest:
            return executor.build(c, dict(body), model=cand.route.upstream_model, stream=req.stream,
                                  client_headers=ex.call.headers, endpoint=ex.endpoint)  # fmt: skip

        try:
            return await upstream.send(self.http, executor, build(cred), timeouts=timeouts)
        except ProviderHTTPError as err:
            if not executor.token_refused(err):
                raise
            renewed = await self.tokens.after_refusal(provider, cred, err.message)
            if renewed is None:
                raise
        try:
            return await upstream.send(self.http, executor, build(renewed), timeouts=timeouts)
        except ProviderHTTPError as err:
            if executor.token_refused(err):
                await self.tokens.refused_again(provider, renewed, err.message)
            raise

    async def _complete(self, ex: Exchange, reply: UpstreamReply) -> Reply:
        assert ex.request is not None and ex.candidate is not None and ex.upstream_codec is not None
        assert ex.executor is not None
        data = upstream.json_object(ex.executor.unwrap_body(await reply.read()), ex.candidate.route.provider.name)
        resp = ex.upstream_codec.decode_response(data)
        if resp.usage == TokenUsage():  # the upstream reported no usage at all: the reply, counted here
            resp.usage = TokenUsage(output_tokens=count_reply(resp), estimated=True)
        resp.usage = self.books.estimated(ex, resp.usage)  # the client's usage and the record agree
        if ex.passthrough:
            _set_model(data, ex.request.model)
            obj = data
        else:
            resp.model = ex.request.model
            if ex.turn is not None:
                resp.id = ex.turn.response_id  # a stored response's own id, and its items' ids from it
            obj = ex.codec.encode_response(resp)
        if ex.turn is not None:
            self.conversations.remember(ex, obj)
        out = dumps(obj)
        self.books.settle(ex, resp.usage)
        self.books.record(ex)
        headers = ex.reply_headers()
        headers["content-type"] = CONTENT_JSON
        return Reply(200, out, headers)

    async def _stream(self, ex: Exchange, reply: UpstreamReply) -> StreamReply:
        assert ex.executor is not None
        chunks = _filtered(reply.iter_chunks(), ex.executor.stream_unwrapper())
        # Read the first chunk before committing: a stream that breaks at once fails over.
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""
        except ProviderError:
            reply.close()
            raise
        headers = ex.reply_headers()
        headers["content-type"] = CONTENT_SSE if ex.call.sse else CONTENT_JSON
        headers["cache-control"] = "no-cache"
        relay = StreamRelay(ex, self.books, reply, chunks, first, _encoder(ex))
        if ex.turn is not None:  # kept when it completes, before the last byte
            return StreamReply(200, self.conversations.tap(ex, aiter(relay)), headers)
        return StreamReply(200, aiter(relay), headers)


async def _filtered(chunks: AsyncIterator[bytes], unwrap: StreamFilter | None) -> AsyncIterator[bytes]:
    """The upstream's stream through the executor's filter (Code Assist's wrapper), if it has one."""
    if unwrap is None:
        async for chunk in chunks:
            yield chunk
        return
    async for chunk in chunks:
        if out := unwrap.feed(chunk):
            yield out
    if tail := unwrap.close():
        yield tail


def _error_from(reply: Reply) -> LLMProxyError:
    try:
        data = loads(reply.body)
        err = data.get("error") or {}
        message = err.get("message") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        message = None
    return LLMProxyError(str(message or f"HTTP {reply.status}"), status=reply.status)


def _encoder(ex: Exchange) -> Any:
    """The client dialect's stream encoder for this call."""
    assert ex.request is not None
    t = ex.traits
    include_usage = True if t.stream_usage_always else ex.request.include_usage
    if t.json_array_streams:
        return ex.codec.StreamEncoder(model=ex.request.model, include_usage=include_usage,
                                      request_id=ex.request_id, sse=ex.call.sse)  # fmt: skip
    base = ex.turn.base if ex.turn is not None else ex.request_id  # a stored response's own id
    return ex.codec.StreamEncoder(model=ex.request.model, include_usage=include_usage, request_id=base)


def _set_model(data: dict[str, Any], model: str) -> None:
    if "model" in data:
        data["model"] = model
    if "modelVersion" in data:
        data["modelVersion"] = model
    inner = data.get("response")
    if isinstance(inner, dict) and "model" in inner:
        inner["model"] = model
