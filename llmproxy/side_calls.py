"""Endpoints that are not a chat turn: token counting and embeddings.

Token counts go to the upstream's own count endpoint when it has one (Anthropic,
Gemini) and fall back to the offline count otherwise, or when that call fails: a count
is an estimate clients use for budgeting, so an answer beats an error. Embeddings pass
through to OpenAI-compatible upstreams and are translated for Gemini.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from . import formats
from ._json import dumps, loads, loads_body
from .errors import InvalidRequest, LLMProxyError, ModelNotFound, PermissionDenied, ProviderError, ProviderProtocolError
from .gateway import CONTENT_JSON, Call, Gateway, Reply, _Attempt, _decode
from .limits import estimate_tokens
from .model import Usage
from .routing import Candidate
from .tokens import count_request, count_text
from .usage import UsageEvent


def _start(call: Call) -> _Attempt:
    rid = call.request_id or uuid.uuid4().hex
    return _Attempt(UsageEvent(request_id=rid, created_at=time.time(), ingress=call.ingress), time.monotonic())


def _reply(body: dict[str, Any], rid: str) -> Reply:
    return Reply(200, dumps(body), {"content-type": CONTENT_JSON, "x-request-id": rid})


async def count_tokens(gw: Gateway, call: Call) -> Reply:
    rt = gw.runtime
    codec = formats.get(call.ingress)
    att = _start(call)
    try:
        key = gw.authenticate(call.api_key, rt)
        body = loads_body(call.body)
        if call.ingress == "anthropic":
            body.setdefault("max_tokens", 1)
        req = _decode(codec, body, call)
        if key is not None and not key.allows(req.model):
            raise PermissionDenied(f"this API key may not use model {req.model!r}")
        routes = rt.routes.get(req.model)
        if not routes:
            raise ModelNotFound(f"model {req.model!r} does not exist or is not served here", param="model")
        tokens = None
        plan = await gw.router.plan(routes, rt.routing, unhealthy=rt.unhealthy)
        for cand in plan.candidates[:1]:
            tokens = await _upstream_count(gw, cand, req, body, call)
        if tokens is None:
            tokens = count_request(req)
    except LLMProxyError as err:
        status, ebody = codec.error_body(err)
        return Reply(status, dumps(ebody), {"content-type": CONTENT_JSON, "x-request-id": att.event.request_id})
    if call.ingress == "anthropic":
        return _reply({"input_tokens": tokens}, att.event.request_id)
    if call.ingress == "gemini":
        return _reply({"totalTokens": tokens}, att.event.request_id)
    return _reply({"object": "response.input_tokens", "input_tokens": tokens}, att.event.request_id)


async def _upstream_count(gw: Gateway, cand: Any, req: Any, body: dict[str, Any], call: Call) -> int | None:
    import dataclasses

    executor = gw.runtime.executors[cand.route.provider.name]
    model = cand.route.upstream_model
    if executor.dialect == "anthropic":
        if call.ingress == "anthropic":
            out = {k: v for k, v in body.items() if k not in ("max_tokens", "stream")}
        else:
            out = formats.get("anthropic").encode_request(dataclasses.replace(req, model=model, stream=False))
            for k in ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata"):
                out.pop(k, None)
        field = "input_tokens"
    elif executor.dialect == "gemini":
        out = formats.get("gemini").count_tokens_body(dataclasses.replace(req, model=model))
        field = "totalTokens"
    else:
        return None
    try:
        ureq = executor.build(cand.credential, out, model=model, stream=False, client_headers=call.headers,
                              endpoint="count_tokens")  # fmt: skip
        reply = await gw.http.send(ureq)
        data = await reply.read()
        if reply.status >= 400:
            return None
        value = loads(data).get(field)
        return int(value) if isinstance(value, int) else None
    except (ProviderError, ValueError, AttributeError):
        return None


async def embeddings(gw: Gateway, call: Call) -> Reply:
    rt = gw.runtime
    codec = formats.get("openai_chat")
    att = _start(call)
    try:
        if len(call.body) > rt.max_body_bytes:
            raise InvalidRequest("request body is too large")
        key = gw.authenticate(call.api_key, rt)
        if key is not None:
            att.event.user_id, att.event.key_id, att.event.key_prefix = key.user_id, key.id, key.prefix
        body = loads_body(call.body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required", param="model")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            raise InvalidRequest("'input' must be a string or a non-empty array", param="input")
        att.event.model, att.key = model, key
        if key is not None and not key.allows(model):
            raise PermissionDenied(f"this API key may not use model {model!r}")
        if not rt.routes.get(model):
            raise ModelNotFound(f"model {model!r} does not exist or is not served here", param="model")
        estimate = estimate_tokens(call.body)
        await gw.limiter.admit(key, estimate)

        async def attempt(cand: Candidate) -> tuple[dict[str, Any], Usage, Candidate]:
            out, usage = await _embed(gw, cand, body, inputs, call)
            return out, usage, cand

        out, usage, cand = await gw.failover(rt, model, att, attempt, tokens=estimate)
        out["model"] = model
        gw._settle(att, usage, cand, 200, "")
        gw._record(att)
        return _reply(out, att.event.request_id)
    except LLMProxyError as err:
        return gw._fail(codec, err, att)


async def _embed(
    gw: Gateway, cand: Any, body: dict[str, Any], inputs: list[Any], call: Call
) -> tuple[dict[str, Any], Usage]:
    executor = gw.runtime.executors[cand.route.provider.name]
    model = cand.route.upstream_model
    if executor.dialect == "openai_chat":
        ureq = executor.build(cand.credential, dict(body), model=model, stream=False, endpoint="embeddings")
        reply = await gw.http.send(ureq)
        data = await reply.read()
        if reply.status >= 400:
            raise executor.classify(reply.status, reply.headers, data)
        out = _json_object(data)
        u = out.get("usage") or {}
        tokens = int(u.get("prompt_tokens") or 0) if isinstance(u, dict) else 0
        return out, Usage(input_tokens=tokens)
    if executor.dialect == "gemini":
        texts = [x if isinstance(x, str) else str(x) for x in inputs]
        gbody: dict[str, Any] = {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}}
                                              for t in texts]}  # fmt: skip
        if isinstance(body.get("dimensions"), int):
            for r in gbody["requests"]:
                r["outputDimensionality"] = body["dimensions"]
        ureq = executor.build(cand.credential, gbody, model=model, stream=False, endpoint="embeddings")
        reply = await gw.http.send(ureq)
        data = await reply.read()
        if reply.status >= 400:
            raise executor.classify(reply.status, reply.headers, data)
        embs = _json_object(data).get("embeddings") or []
        tokens = sum(count_text(t) for t in texts)
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": e.get("values", [])} for i, e in enumerate(embs)],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }, Usage(input_tokens=tokens)
    raise InvalidRequest(f"model {body.get('model')!r} is served by a provider without embeddings", param="model")


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        out = loads(data)
    except ValueError:
        raise ProviderProtocolError("upstream reply is not JSON") from None
    if not isinstance(out, dict):
        raise ProviderProtocolError("upstream reply is not a JSON object")
    return out
