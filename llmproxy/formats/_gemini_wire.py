"""Gemini wire helpers shared by the request, response and stream codecs.

Gemini accepts protobuf JSON, so a field may be spelled camelCase or snake_case;
:func:`norm` folds structural keys to camelCase (never user data such as arguments or
schemas). Thought signatures are base64 bytes on the wire; the helpers here check them
and carry them inside call ids for clients that only echo ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import mimetypes
import re
import secrets
from typing import Any

from .._json import dumps_str, parse_arguments
from ..errors import InvalidRequest, LLMProxyError, ProviderError, ProviderHTTPError
from ..model import FinishReason, ImagePart, Metadata, Part, TextPart, ThinkingPart, ToolCallPart, Usage
from ._common import field_type

NAME = "gemini"
#: Google's documented stand-in for history that never had a signature.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_CONTENT_FILTER = {"SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                   "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "MODEL_ARMOR"}  # fmt: skip
FINISH_OUT = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY",
              "error": "OTHER"}  # fmt: skip
# The keys that say what a part holds (a bare thoughtSignature holds nothing else).
DATA_KEYS = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                       "codeExecutionResult", "toolCall", "toolResponse"})  # fmt: skip
_SIG_ID = re.compile(r"^call_[0-9a-f]{12}_ts_([A-Za-z0-9_-]+)$")
_SAFE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_GENERATION = re.compile(r"gemini-(\d+)")


def camel(key: str) -> str:
    if "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def norm(d: Any) -> dict[str, Any]:
    """Structural keys in camelCase; a camelCase spelling wins over its snake twin."""
    if not isinstance(d, dict):
        return {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        ck = camel(str(k))
        if ck not in out or k == ck:
            out[ck] = v
    return out


def generation(model: str) -> int | None:
    """The Gemini major version in a model name (``gemini-2.5-pro`` -> 2), if it has one."""
    m = _GENERATION.search(model)
    return int(m.group(1)) if m else None


def meta(**values: Any) -> Metadata | None:
    kept = {k: v for k, v in values.items() if v is not None}
    return {NAME: kept} if kept else None


def gemini_meta(meta: Metadata | None) -> dict[str, Any]:
    value = (meta or {}).get(NAME)
    return value if isinstance(value, dict) else {}


def signature_bytes(sig: str) -> bytes | None:
    """A thought signature as bytes; None unless it is base64 (either alphabet, padding optional)."""
    s = sig.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def valid_signature(sig: Any) -> str | None:
    return sig if isinstance(sig, str) and sig and signature_bytes(sig) is not None else None


def call_id_with_signature(sig: str) -> str:
    """A fresh call id carrying the signature, for clients that only echo ids."""
    raw = signature_bytes(sig)
    head = f"call_{secrets.token_hex(6)}"
    if raw is None:
        return head
    return f"{head}_ts_{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


def signature_from_id(call_id: str) -> str | None:
    """The standard-base64 signature embedded by :func:`call_id_with_signature`."""
    m = _SIG_ID.match(call_id)
    if not m:
        return None
    raw = signature_bytes(m.group(1))
    return base64.b64encode(raw).decode() if raw else None


def call_signature(part: ToolCallPart) -> str | None:
    sig = gemini_meta(part.provider_metadata).get("thought_signature")
    return sig if isinstance(sig, str) and sig else signature_from_id(part.id)


def thinking_signature(part: ThinkingPart) -> str | None:
    if part.redacted:
        return None
    if part.source == NAME and part.signature:
        return part.signature
    sig = gemini_meta(part.provider_metadata).get("thought_signature")
    return sig if isinstance(sig, str) and sig else None


def encode_image(img: ImagePart) -> dict[str, Any]:
    """An image part: inline base64, or ``fileData`` for a URL that was not inlined."""
    if img.data is None and img.url and img.url.startswith("data:"):
        header, _, data = img.url.partition(",")
        return {"inlineData": {"mimeType": header[5:].split(";")[0] or "image/png", "data": data}}
    if img.data is not None:
        return {"inlineData": {"mimeType": img.media_type or "image/png", "data": img.data}}
    fd: dict[str, Any] = {"fileUri": img.url or ""}
    mime = img.media_type or mimetypes.guess_type(img.url or "")[0]
    if mime:
        fd["mimeType"] = mime
    return {"fileData": fd}


def args_object(arguments: str) -> dict[str, Any]:
    value = parse_arguments(arguments)
    return value if isinstance(value, dict) else {}


def decode_usage(raw: Any) -> Usage:
    u = norm(raw)
    prompt = int(u.get("promptTokenCount") or 0)
    cands = int(u.get("candidatesTokenCount") or 0)
    thoughts = int(u.get("thoughtsTokenCount") or 0)
    tool = int(u.get("toolUsePromptTokenCount") or 0)
    total = int(u.get("totalTokenCount") or 0)
    output = cands + thoughts
    if thoughts and total and prompt + cands + tool == total:
        output = cands  # this upstream already counts thoughts in candidates (LiteLLM's check)
    return Usage(
        input_tokens=prompt + tool,
        output_tokens=output,
        cached_tokens=int(u.get("cachedContentTokenCount") or 0),
        reasoning_tokens=thoughts,
    )


def encode_usage(u: Usage) -> dict[str, Any]:
    thoughts = min(u.reasoning_tokens, u.output_tokens)
    cands = u.output_tokens - thoughts
    out: dict[str, Any] = {"promptTokenCount": u.input_tokens, "candidatesTokenCount": cands,
                           "totalTokenCount": u.input_tokens + cands + thoughts}  # fmt: skip
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if u.cached_tokens:
        out["cachedContentTokenCount"] = u.cached_tokens
    return out


def finish_in(reason: Any, has_calls: bool) -> FinishReason:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _CONTENT_FILTER:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


def response_part(raw: Any) -> Part | None:
    """One part of a model reply; kinds the canonical model cannot hold are dropped."""
    p = norm(raw)
    sig = valid_signature(p.get("thoughtSignature"))
    if p.get("thought") is True:
        return ThinkingPart(str(p.get("text") or ""), signature=sig, source=NAME)
    if "text" in p or (sig and DATA_KEYS.isdisjoint(p)):  # Gemini 3 may sign an empty part
        return TextPart(str(p.get("text") or ""), meta(thought_signature=sig))
    if "functionCall" in p:
        fc = norm(p["functionCall"])
        native = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else None
        if sig:
            cid = call_id_with_signature(sig)
        elif native and _SAFE_ID.match(native):
            cid = native
        else:
            cid = f"call_{secrets.token_hex(6)}"
        args = fc.get("args")
        return ToolCallPart(cid, str(fc.get("name") or ""), dumps_str(args if isinstance(args, dict) else {}),
                            meta(thought_signature=sig, id=native))  # fmt: skip
    if "inlineData" in p:
        blob = norm(p["inlineData"])
        return ImagePart(data=str(blob.get("data") or ""), media_type=blob.get("mimeType"))
    return None


def upstream_error(err: Any) -> ProviderError:
    e = norm(err) if isinstance(err, dict) else {"message": str(err)}
    message = str(e.get("message") or "upstream error")
    code = e.get("code")
    if isinstance(code, int) and code >= 400:
        return ProviderHTTPError(message, upstream_status=code, code="upstream_stream_error")
    return ProviderError(message, code="upstream_stream_error")


def reply_part(p: Part) -> dict[str, Any] | None:
    """A canonical part as a Gemini client expects it (signatures only if valid base64)."""
    if isinstance(p, TextPart):
        sig = valid_signature(gemini_meta(p.provider_metadata).get("thought_signature"))
        return {"text": p.text, **({"thoughtSignature": sig} if sig else {})}
    if isinstance(p, ThinkingPart):
        sig = valid_signature(thinking_signature(p))
        if p.redacted or not (p.text or sig):
            return None
        return {"text": p.text, "thought": True, **({"thoughtSignature": sig} if sig else {})}
    if isinstance(p, ToolCallPart):
        return reply_call(p.id, p.name, p.arguments, call_signature(p))
    if isinstance(p, ImagePart):
        return encode_image(p)
    return None


def reply_call(cid: str, name: str, arguments: str, sig: str | None) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"id": cid, "name": name, "args": args_object(arguments)}}
    sig = valid_signature(sig)
    if sig:
        part["thoughtSignature"] = sig
    return part


def candidate(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts} if parts else {"role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
           502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip


def error_body(err: LLMProxyError) -> tuple[int, dict[str, Any]]:
    status = 400 if err.status == 413 else err.status
    body: dict[str, Any] = {
        "code": status,
        "message": err.message,
        "status": _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"),
    }
    if err.retry_after is not None:
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": f"{math.ceil(err.retry_after)}s"}]  # fmt: skip
    return status, {"error": body}


def models_body(models: list[str]) -> dict[str, Any]:
    """``GET /v1beta/models`` as Gemini lists models."""
    return {"models": [{"name": f"models/{m}", "displayName": m,
                        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]}
                       for m in models]}  # fmt: skip


def embeddings_body(model: str, texts: list[str], dimensions: Any = None) -> dict[str, Any]:
    """``:batchEmbedContents`` for OpenAI's ``input`` texts."""
    body: dict[str, Any] = {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}}
                                         for t in texts]}  # fmt: skip
    if isinstance(dimensions, int):
        for r in body["requests"]:
            r["outputDimensionality"] = dimensions
    return body


def embeddings_reply(data: dict[str, Any], model: str, tokens: int) -> dict[str, Any]:
    """Gemini's embeddings -> OpenAI's list (Gemini reports no token count: ``tokens`` is ours)."""
    embs = data.get("embeddings") or []
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e.get("values", [])} for i, e in enumerate(embs)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


class CallBook:
    """Call ids of one conversation: native when sent, else deterministic.

    A ``functionResponse`` without an id answers the Nth call of its name in the latest
    model turn, so the Nth response named X pairs with the Nth call named X.
    """

    def __init__(self) -> None:
        self.turn: dict[str, list[str]] = {}
        self.answered: dict[str, int] = {}

    def new_turn(self) -> None:
        self.turn, self.answered = {}, {}

    def call(self, name: str, native: Any, where: tuple[int, int]) -> str:
        cid = native if isinstance(native, str) and native else synth_id(name, where)
        self.turn.setdefault(name, []).append(cid)
        return cid

    def answer(self, name: str, native: Any, where: tuple[int, int]) -> str:
        n = self.answered.get(name, 0)
        self.answered[name] = n + 1
        if isinstance(native, str) and native:
            return native
        calls = self.turn.get(name, [])
        return calls[n] if n < len(calls) else synth_id(name, where)


def synth_id(name: str, where: tuple[int, int]) -> str:
    safe = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:40]
    if safe != name:
        safe += "_" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"call_{where[0]}_{where[1]}_{safe}"


def number_field(gc: dict[str, Any], key: str) -> float | None:
    value = gc.get(key)
    if value is None:
        return None
    return float(field_type(value, (int, float), f"generationConfig.{key}"))


def integer_field(gc: dict[str, Any], key: str) -> int | None:
    value = number_field(gc, key)
    if value is None:
        return None
    if not math.isfinite(value) or value != int(value):
        raise InvalidRequest(f"'generationConfig.{key}' must be an integer", param=f"generationConfig.{key}")
    return int(value)
