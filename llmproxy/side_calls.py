"""Endpoints that are not a chat turn: token counting and embeddings.

Token counts go to the upstream's own count endpoint when it has one (Anthropic,
Gemini) and fall back to the offline count otherwise, or when that call fails: a count
is an estimate clients use for budgeting, so an answer beats an error. Embeddings pass
through to OpenAI-compatible upstreams and are translated for Gemini.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import formats, upstream
from ._json import dumps, loads, loads_body
from .conversations import INGRESS as RESPONSES
from .errors import InvalidRequest, LLMProxyError, ProviderError
from .exchange import CONTENT_JSON, Call, Exchange, Reply
from .gateway import Gateway
from .model import Request, Usage
from .routing import Candidate
from .tokens import count_request, count_text


def _reply(body: dict[str, Any], rid: str) -> Reply:
    return Reply(200, dumps(body), {"content-type": CONTENT_JSON, "x-request-id": rid})


async def count_tokens(gw: Gateway, call: Call) -> Reply:
    rt = gw.runtime
    codec = formats.get(call.ingress)
    ex = Exchange.open(call, rt, codec, "count_tokens")
    try:
        ex.identify(await gw.admit(call, rt))
        gw.check_overrides(ex)
        ex.body = loads_body(call.body)
        if call.ingress == RESPONSES:  # previous_response_id, item_reference: the whole conversation counts
            await gw.conversations.prepare(ex)
            ex.turn = None
        if ex.traits.requires_max_tokens:
            ex.body.setdefault("max_tokens", 1)
        req = gw.decode(ex)
        gw.check_model(ex, req.model)
        tokens = None
        plan = await gw.router.plan(ex.routes_for(req.model), rt.routing, unhealthy=rt.unhealthy)
        for cand in plan.candidates[:1]:
            ex.begin_attempt(cand, 0)
            tokens = await _upstream_count(gw, ex, cand, req)
        if tokens is None:
            tokens = count_request(req)
    except LLMProxyError as err:
        status, ebody = codec.error_body(gw.books.disclose(ex, err))
        headers = {"content-type": CONTENT_JSON, "x-request-id": ex.request_id}
        if err.retry_after is not None:
            headers["retry-after"] = str(max(1, int(-(-err.retry_after // 1))))
        return Reply(status, dumps(ebody), headers)
    field = ex.traits.count_field
    if field:
        return _reply({field: tokens}, ex.request_id)
    return _reply({"object": "response.input_tokens", "input_tokens": tokens}, ex.request_id)


async def _upstream_count(gw: Gateway, ex: Exchange, cand: Candidate, req: Request) -> int | None:
    """The upstream's own count, or None (no count endpoint, or it failed: the offline count answers)."""
    executor, codec = ex.executor, ex.upstream_codec
    assert executor is not None and codec is not None
    field = formats.traits(codec).count_field
    if not field:
        return None
    model = cand.route.upstream_model
    out = codec.count_tokens_body(dataclasses.replace(req, model=model), ex.body if ex.passthrough else None)
    try:
        ureq = executor.build(cand.credential, out, model=model, stream=False, client_headers=ex.call.headers,
                              endpoint="count_tokens")  # fmt: skip
        status, data = await upstream.fetch(gw.http, ureq, timeouts=ex.timeouts(gw.http.timeouts))
        if status >= 400:
            return None
        value = loads(data).get(field)
        return int(value) if isinstance(value, int) else None
    except (ProviderError, ValueError, AttributeError):
        return None


async def embeddings(gw: Gateway, call: Call) -> Reply:
    rt = gw.runtime
    ex = Exchange.open(call, rt, formats.get("openai_chat"), "embeddings")
    try:
        if len(call.body) > rt.max_body_bytes:
            raise InvalidRequest("request body is too large")
        key = await gw.admit(call, rt)
        ex.identify(key)
        gw.check_overrides(ex)
        body = ex.body = loads_body(call.body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required", param="model")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise InvalidRequest("'input' must be a string or a non-empty array", param="input")
        ex.event.model = model
        gw.check_model(ex, model)
        estimate = await gw.reserve(ex, None, model)

        async def attempt(ex: Exchange) -> tuple[dict[str, Any], Usage]:
            return await _embed(gw, ex, inputs)

        out, usage = await gw.failover(ex, model, attempt, tokens=estimate)
        out["model"] = model
        gw.books.settle(ex, usage)
        gw.books.record(ex)
        return _reply(out, ex.request_id)
    except LLMProxyError as err:
        return gw.books.fail(ex, err)


async def _embed(gw: Gateway, ex: Exchange, inputs: list[Any]) -> tuple[dict[str, Any], Usage]:
    executor, codec, cand = ex.executor, ex.upstream_codec, ex.candidate
    assert executor is not None and codec is not None and cand is not None
    model = cand.route.upstream_model
    kind = formats.traits(codec).embeddings
    if kind == "passthrough":
        ureq = executor.build(cand.credential, dict(ex.body), model=model, stream=False, endpoint="embeddings")
        out = await upstream.call_json(gw.http, executor, ureq, timeouts=ex.timeouts(gw.http.timeouts))
        u = out.get("usage") or {}
        tokens = int(u.get("prompt_tokens") or 0) if isinstance(u, dict) else 0
        return out, Usage(input_tokens=tokens)
    if kind == "translated":
        texts = [x if isinstance(x, str) else str(x) for x in inputs]
        ureq = executor.build(cand.credential, codec.embeddings_body(model, texts, ex.body.get("dimensions")),
                              model=model, stream=False, endpoint="embeddings")  # fmt: skip
        data = await upstream.call_json(gw.http, executor, ureq, timeouts=ex.timeouts(gw.http.timeouts))
        tokens = sum(count_text(t) for t in texts)
        return codec.embeddings_reply(data, model, tokens), Usage(input_tokens=tokens)
    raise InvalidRequest(f"model {ex.body.get('model')!r} is served by a provider without embeddings", param="model")
