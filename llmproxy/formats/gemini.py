"""Gemini ``generateContent`` / ``streamGenerateContent`` <-> the canonical model.

The model name lives in the URL, so ``decode_request`` takes it as an argument and
``encode_request`` returns a body without one. Every field may come camelCase or
snake_case (google-genai mixes both in one body, and sends ``topK: 40.0``).

Function-call thought signatures must come back on replay (Gemini 3 answers 400
otherwise). They travel in ``provider_metadata["gemini"]`` and, for clients that only
echo ids, inside the call id: ``call_<12 hex>_ts_<base64url signature>``.
"""

from __future__ import annotations

import time
from typing import Any

from .._json import dumps_str, loads
from ..errors import InvalidRequest, ProviderProtocolError
from ..model import (
    ImagePart,
    Message,
    Part,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    Role,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from . import gemini_schema
from ._common import Traits, effort_from_budget, field_type, optional_list
from ._gemini_stream import StreamDecoder, StreamEncoder
from ._gemini_wire import (
    DATA_KEYS,
    FINISH_OUT,
    NAME,
    SKIP_SIGNATURE,
    CallBook,
    args_object,
    call_id_with_signature,
    call_signature,
    camel,
    candidate,
    decode_usage,
    embeddings_body,
    embeddings_reply,
    encode_image,
    encode_usage,
    error_body,
    finish_in,
    gemini_meta,
    generation,
    integer_field,
    meta,
    models_body,
    norm,
    number_field,
    reply_part,
    response_part,
    signature_bytes,
    signature_from_id,
    thinking_signature,
    upstream_error,
)

__all__ = [
    "NAME",
    "SKIP_SIGNATURE",
    "TRAITS",
    "StreamDecoder",
    "StreamEncoder",
    "call_id_with_signature",
    "count_tokens_body",
    "decode_request",
    "decode_response",
    "decode_usage",
    "embeddings_body",
    "embeddings_reply",
    "encode_image",
    "encode_request",
    "encode_response",
    "encode_usage",
    "error_body",
    "generation",
    "models_body",
    "signature_bytes",
    "signature_from_id",
]  # fmt: skip

#: Model in the URL, no image URLs upstream, usage in every stream, SSE or a JSON array.
TRAITS = Traits(
    model_in_path=True,
    inline_images=True,
    stream_usage_always=True,
    json_array_streams=True,
    count_field="totalTokens",
    embeddings="translated",
)

_LEVELS = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH",
           "xhigh": "HIGH", "max": "HIGH"}  # fmt: skip
_BUDGETS = {"none": 0, "minimal": 128, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384}
_EFFORTS = {"minimal", "low", "medium", "high", "xhigh"}
_KNOWN = {"model", "contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
# Top-level request fields of Gemini's own that may ride in Request.extra.
_PASSTHROUGH = {"safetySettings", "cachedContent", "labels", "generationConfig", "tools", "toolConfig",
                "modelArmorConfig", "serviceTier"}  # fmt: skip
_GEN_KNOWN = {"temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "seed", "responseMimeType",
              "responseJsonSchema", "responseSchema", "thinkingConfig"}  # fmt: skip


def decode_request(body: dict[str, Any], model: str | None = None) -> Request:
    body = norm(body)
    if "contents" not in body and isinstance(body.get("generateContentRequest"), dict):
        inner = norm(body["generateContentRequest"])  # the :countTokens wrapper
        body = {**inner, "model": inner.get("model") or body.get("model")}
    name = model or body.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("the model name is required (it goes in the URL path)", param="model")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("'contents' is required and must be a non-empty array", param="contents")
    messages: list[Message] = []
    if body.get("systemInstruction") is not None:
        messages.append(Message("system", _system_parts(body["systemInstruction"])))
    book = CallBook()
    for i, content in enumerate(contents):
        messages.extend(_decode_content(content, i, book))
    req = Request(model=name.removeprefix("models/"), messages=messages)
    req.tools, other_tools = _decode_tools(body.get("tools"))
    req.tool_choice = _decode_tool_choice(body.get("toolConfig"))
    _decode_generation(body.get("generationConfig"), req)
    req.extra.update({k: v for k, v in body.items() if k not in _KNOWN})
    if other_tools:
        req.extra["tools"] = other_tools
    return req


def _system_parts(value: Any) -> list[Part]:
    if isinstance(value, str):
        return [TextPart(value)]
    parts = norm(value).get("parts")
    if not isinstance(parts, list):
        raise InvalidRequest("'systemInstruction.parts' must be an array", param="systemInstruction")
    return [TextPart(str(norm(p).get("text", ""))) for p in parts if "text" in norm(p)]


def _decode_content(content: Any, i: int, book: CallBook) -> list[Message]:
    where = f"contents[{i}]"
    c = norm(content)
    role = c.get("role") or "user"
    if role not in ("user", "model", "function"):
        raise InvalidRequest(f"{where}.role must be 'user' or 'model', not {role!r}", param=f"{where}.role")
    parts = c.get("parts")
    if not isinstance(parts, list):
        raise InvalidRequest(f"{where}.parts must be an array", param=f"{where}.parts")
    if role == "model":
        book.new_turn()
        return [
            Message("assistant", [_decode_part(p, f"{where}.parts[{j}]", (i, j), book) for j, p in enumerate(parts)])
        ]
    out: list[Message] = []
    for j, p in enumerate(parts):
        part = _decode_part(p, f"{where}.parts[{j}]", (i, j), book)
        role_here: Role = "tool" if isinstance(part, ToolResultPart) else "user"
        if isinstance(part, ToolCallPart):
            raise InvalidRequest(f"{where}.parts[{j}]: functionCall belongs in a 'model' turn", param=where)
        if out and out[-1].role == role_here:
            out[-1].parts.append(part)
        else:
            out.append(Message(role_here, [part]))
    return out


def _decode_part(raw: Any, where: str, at: tuple[int, int], book: CallBook) -> Part:
    p = norm(raw)
    sig = p.get("thoughtSignature") if isinstance(p.get("thoughtSignature"), str) else None
    if p.get("thought") is True:
        return ThinkingPart(str(p.get("text") or ""), signature=sig, source=NAME)
    if "text" in p or (sig and DATA_KEYS.isdisjoint(p)):  # Gemini 3 may sign an empty part
        return TextPart(str(p.get("text") or ""), meta(thought_signature=sig))
    if "inlineData" in p or "fileData" in p:
        return _decode_media(p, where)
    if "functionCall" in p:
        fc = norm(p["functionCall"])
        name = fc.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"{where}.functionCall.name is required", param=where)
        args = fc.get("args")
        if args is not None and not isinstance(args, dict):
            raise InvalidRequest(f"{where}.functionCall.args must be an object", param=where)
        cid = book.call(name, fc.get("id"), at)
        native = fc.get("id") if isinstance(fc.get("id"), str) else None
        return ToolCallPart(cid, name, dumps_str(args or {}), meta(thought_signature=sig, id=native))
    if "functionResponse" in p:
        return _decode_function_response(norm(p["functionResponse"]), where, at, book)
    kinds = ", ".join(sorted(k for k in p if k not in ("thoughtSignature", "thought", "partMetadata"))) or "empty"
    raise InvalidRequest(
        f"{where} is an unsupported part ({kinds}); supported: text, inlineData, fileData, functionCall, functionResponse",
        param=where,
    )


def _decode_media(p: dict[str, Any], where: str) -> ImagePart:
    if "inlineData" in p:
        blob = norm(p["inlineData"])
        if not isinstance(blob.get("data"), str):
            raise InvalidRequest(f"{where}.inlineData.data must be a base64 string", param=where)
        # google-genai sends URL-safe base64; the canonical (and every other dialect's) alphabet is standard.
        data = blob["data"].replace("-", "+").replace("_", "/")
        return ImagePart(data=data + "=" * (-len(data) % 4), media_type=blob.get("mimeType"))
    fd = norm(p["fileData"])
    if not isinstance(fd.get("fileUri"), str):
        raise InvalidRequest(f"{where}.fileData.fileUri is required", param=where)
    return ImagePart(url=fd["fileUri"], media_type=fd.get("mimeType"))


def _decode_function_response(fr: dict[str, Any], where: str, at: tuple[int, int], book: CallBook) -> ToolResultPart:
    name = fr.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.functionResponse.name is required", param=where)
    response = fr.get("response")
    response = response if isinstance(response, dict) else {}
    media = [_decode_media(norm(x), f"{where}.functionResponse.parts") for x in optional_list(fr.get("parts"), f"{where}.functionResponse.parts")
             if "inlineData" in norm(x) or "fileData" in norm(x)]  # fmt: skip
    content: list[TextPart | ImagePart] = []
    is_error = False
    if len(response) == 1 and "error" in response:
        is_error = True
        err = response["error"]
        content.append(TextPart(err if isinstance(err, str) else dumps_str(err)))
    elif len(response) == 1 and isinstance(response.get("result", response.get("output")), str):
        content.append(TextPart(next(iter(response.values()))))
    elif response or not media:
        content.append(TextPart(dumps_str(response)))
    content.extend(media)
    return ToolResultPart(book.answer(name, fr.get("id"), at), content, is_error, name)


def _decode_tools(tools: Any) -> tuple[list[Tool], list[Any]]:
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", param="tools")
    out: list[Tool] = []
    other: list[Any] = []
    for i, raw in enumerate(tools):
        t = norm(raw)
        decls = t.get("functionDeclarations")
        if decls is None:
            other.append(raw)
            continue
        for j, d in enumerate(decls if isinstance(decls, list) else []):
            d = norm(d)
            if not isinstance(d.get("name"), str) or not d["name"]:
                raise InvalidRequest(f"tools[{i}].functionDeclarations[{j}].name is required", param=f"tools[{i}]")
            if isinstance(d.get("parametersJsonSchema"), dict):
                params = d["parametersJsonSchema"]
            elif isinstance(d.get("parameters"), dict):
                params = gemini_schema.to_json_schema(d["parameters"])
            else:
                params = {"type": "object", "properties": {}}
            out.append(Tool(d["name"], d.get("description"), params))
    return out, other


def _decode_tool_choice(config: Any) -> ToolChoice | None:
    fcc = norm(norm(config).get("functionCallingConfig"))
    if not fcc:
        return None
    mode = str(fcc.get("mode") or "AUTO").upper()
    names = fcc.get("allowedFunctionNames") or []
    if mode in ("AUTO", "VALIDATED", "MODE_UNSPECIFIED"):
        return ToolChoice("auto")
    if mode == "NONE":
        return ToolChoice("none")
    if mode == "ANY":
        if isinstance(names, list) and len(names) == 1 and isinstance(names[0], str):
            return ToolChoice("tool", names[0])
        return ToolChoice("required")
    raise InvalidRequest(f"functionCallingConfig.mode {mode!r} is not AUTO, ANY or NONE", param="toolConfig")


def _decode_generation(raw: Any, req: Request) -> None:
    gc = norm(raw)
    req.temperature = number_field(gc, "temperature")
    req.top_p = number_field(gc, "topP")
    req.top_k = integer_field(gc, "topK")
    req.max_tokens = integer_field(gc, "maxOutputTokens")
    req.seed = integer_field(gc, "seed")
    stops = gc.get("stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise InvalidRequest("'generationConfig.stopSequences' must be an array of strings", param="stopSequences")
        req.stop = list(stops)
    leftover = {k: v for k, v in gc.items() if k not in _GEN_KNOWN}
    mime = gc.get("responseMimeType")
    if mime == "application/json":
        if isinstance(gc.get("responseJsonSchema"), dict):
            req.response_format = ResponseFormat("json_schema", schema=gc["responseJsonSchema"])
        elif isinstance(gc.get("responseSchema"), dict):
            req.response_format = ResponseFormat(
                "json_schema", schema=gemini_schema.to_json_schema(gc["responseSchema"])
            )
        else:
            req.response_format = ResponseFormat("json_object")
    elif mime is not None and mime != "text/plain":
        leftover.update({k: gc[k] for k in ("responseMimeType", "responseJsonSchema", "responseSchema") if k in gc})
    if gc.get("thinkingConfig") is not None:
        req.reasoning = _decode_thinking(norm(gc["thinkingConfig"]))
    if leftover:
        req.extra["generationConfig"] = leftover


def _decode_thinking(tc: dict[str, Any]) -> Reasoning:
    r = Reasoning()
    budget = tc.get("thinkingBudget")
    if budget is not None:
        budget = int(field_type(budget, (int, float), "thinkingConfig.thinkingBudget"))
        r.budget_tokens = None if budget < 0 else budget  # -1: the model decides
    level = str(tc.get("thinkingLevel") or "").lower()
    if level in _EFFORTS:
        r.effort = level  # type: ignore[assignment]
    if isinstance(tc.get("includeThoughts"), bool):
        r.include_thoughts = tc["includeThoughts"]
    return r


def encode_request(req: Request) -> dict[str, Any]:
    gen = generation(req.model)
    system, contents = _encode_messages(req.messages, gen)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if req.tools:
        body["tools"] = [{"functionDeclarations": [_encode_tool(t) for t in req.tools]}]
        if req.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _encode_tool_choice(req.tool_choice)}
    gc = _encode_generation(req, gen)
    if gc:
        body["generationConfig"] = gc
    _merge_extra(body, req.extra)
    return body


def _merge_extra(body: dict[str, Any], extra: dict[str, Any]) -> None:
    """Gemini-only fields a Gemini client sent; another dialect's leftovers never match."""
    for key, value in extra.items():
        ck = camel(key)
        if ck not in _PASSTHROUGH:
            continue
        if ck == "tools" and isinstance(value, list):
            native = [t for t in value if isinstance(t, dict) and "type" not in t]
            if native:
                body["tools"] = [*body.get("tools", []), *native]
        elif isinstance(value, dict) and isinstance(body.get(ck), dict):
            body[ck] = {**body[ck], **value}
        else:
            body[ck] = value


def _encode_messages(messages: list[Message], gen: int | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    calls: dict[str, tuple[int, ToolCallPart]] = {}
    results: list[ToolResultPart] = []
    for m in messages:
        if m.role == "tool":
            results.extend(p for p in m.parts if isinstance(p, ToolResultPart))
            continue
        if results:
            contents.append(_encode_results(results, calls, gen))
            results = []
        if m.role == "system":
            system.extend({"text": p.text} for p in m.parts if isinstance(p, TextPart) and p.text)
        elif m.role == "assistant":
            for p in m.parts:
                if isinstance(p, ToolCallPart):
                    calls[p.id] = (len(calls), p)
            parts = _encode_model_parts(m.parts, gen)
            if parts:
                contents.append({"role": "model", "parts": parts})
        else:
            user = [d for d in (_encode_user_part(p) for p in m.parts) if d is not None]
            if user:
                contents.append({"role": "user", "parts": user})
    if results:
        contents.append(_encode_results(results, calls, gen))
    return system, contents


def _encode_user_part(p: Part) -> dict[str, Any] | None:
    if isinstance(p, TextPart) and p.text:
        return {"text": p.text}
    if isinstance(p, ImagePart):
        return encode_image(p)
    return None


def _encode_model_parts(parts: list[Part], gen: int | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    first_call = True
    for p in parts:
        if isinstance(p, TextPart):
            sig = gemini_meta(p.provider_metadata).get("thought_signature")
            if p.text or sig:
                out.append({"text": p.text, **({"thoughtSignature": sig} if sig else {})})
        elif isinstance(p, ThinkingPart):
            sig = thinking_signature(p)
            if sig:  # thoughts without a Gemini signature mean nothing to Gemini
                out.append({"text": p.text, "thought": True, "thoughtSignature": sig})
        elif isinstance(p, ToolCallPart):
            fc: dict[str, Any] = {"name": p.name, "args": args_object(p.arguments)}
            native = gemini_meta(p.provider_metadata).get("id")
            if isinstance(native, str):
                fc["id"] = native
            part: dict[str, Any] = {"functionCall": fc}
            sig = call_signature(p)
            if sig is None and first_call and (gen is None or gen >= 3):
                sig = SKIP_SIGNATURE  # Gemini 3 validates the first call of each step
            if sig:
                part["thoughtSignature"] = sig
            first_call = False
            out.append(part)
        elif isinstance(p, ImagePart):
            out.append(encode_image(p))
    return out


def _encode_results(
    results: list[ToolResultPart], calls: dict[str, tuple[int, ToolCallPart]], gen: int | None
) -> dict[str, Any]:
    """One user turn answering the calls, in call order; images inline or after them."""
    ordered = sorted(results, key=lambda r: calls[r.tool_call_id][0] if r.tool_call_id in calls else len(calls))
    parts: list[dict[str, Any]] = []
    trailing: list[dict[str, Any]] = []
    for r in ordered:
        call = calls.get(r.tool_call_id)
        name = r.name or (call[1].name if call else None)
        if not name:
            raise InvalidRequest(
                f"tool result {r.tool_call_id!r} answers no earlier tool call; Gemini needs the function name",
                param="messages",
            )
        fr: dict[str, Any] = {"name": name, "response": _result_object(r)}
        native = gemini_meta(call[1].provider_metadata).get("id") if call else None
        if isinstance(native, str):
            fr["id"] = native
        images = [encode_image(c) for c in r.content if isinstance(c, ImagePart)]
        if images and gen is not None and gen >= 3:
            fr["parts"] = images  # multimodal function responses (Gemini 3)
        else:
            trailing.extend(images)
        parts.append({"functionResponse": fr})
    return {"role": "user", "parts": parts + trailing}


def _result_object(r: ToolResultPart) -> dict[str, Any]:
    text = "".join(c.text for c in r.content if isinstance(c, TextPart))
    if r.is_error:
        return {"error": text}
    if not text and any(isinstance(c, ImagePart) for c in r.content):
        return {}
    try:
        value = loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def _encode_tool(t: Tool) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": t.name}
    if t.description:
        decl["description"] = t.description
    params = gemini_schema.clean(t.parameters)
    if params.get("properties"):  # Gemini rejects an OBJECT with no properties
        decl["parameters"] = params
    return decl


def _encode_tool_choice(tc: ToolChoice) -> dict[str, Any]:
    if tc.mode == "tool":
        return {"mode": "ANY", "allowedFunctionNames": [tc.name]}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[tc.mode]}


def _encode_generation(req: Request, gen: int | None) -> dict[str, Any]:
    gc: dict[str, Any] = {}
    for key, value in (("temperature", req.temperature), ("topP", req.top_p), ("topK", req.top_k),
                       ("maxOutputTokens", req.max_tokens), ("seed", req.seed)):  # fmt: skip
        if value is not None:
            gc[key] = value
    if req.stop:
        gc["stopSequences"] = req.stop[:5]
    rf = req.response_format
    if rf is not None and rf.type != "text":
        gc["responseMimeType"] = "application/json"
        if rf.type == "json_schema" and rf.schema:
            gc["responseJsonSchema"] = rf.schema
    if req.reasoning is not None:
        gc["thinkingConfig"] = _encode_thinking(req.reasoning, req.model, gen)
    return gc


def _encode_thinking(r: Reasoning, model: str, gen: int | None) -> dict[str, Any]:
    """thinkingLevel for Gemini 3, thinkingBudget otherwise; never both."""
    off = r.effort == "none" or r.budget_tokens == 0
    tc: dict[str, Any] = {}
    if gen is not None and gen >= 3:
        effort = r.effort or effort_from_budget(r.budget_tokens)
        if effort:
            level = _LEVELS[effort]
            tc["thinkingLevel"] = "LOW" if level == "MINIMAL" and "pro" in model else level
    else:
        budget = -1  # dynamic: the model decides
        if r.budget_tokens is not None:
            budget = max(r.budget_tokens, 0)
        elif r.effort:
            budget = _BUDGETS[r.effort]
        if budget == 0 and gen == 2 and "pro" in model:
            budget = 128  # 2.5 Pro cannot turn thinking off
        tc["thinkingBudget"] = budget
    tc["includeThoughts"] = r.include_thoughts if r.include_thoughts is not None else not off
    return tc


def count_tokens_body(req: Request, passthrough: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body for ``:countTokens``: bare contents, or the whole request when it has more.

    Always built from the canonical request (``passthrough``, the client's own body, is unused)."""
    body = encode_request(req)
    if "systemInstruction" not in body and "tools" not in body:
        return {"contents": body["contents"]}
    keep = {k: body[k] for k in ("contents", "systemInstruction", "tools", "toolConfig") if k in body}
    return {"generateContentRequest": {"model": f"models/{req.model}", **keep}}


# --- responses -----------------------------------------------------------------------


def decode_response(body: dict[str, Any]) -> Response:
    b = norm(body)
    if b.get("error"):
        raise upstream_error(b["error"])
    usage = decode_usage(b.get("usageMetadata"))
    resp = Response(id=str(b.get("responseId") or ""), model=str(b.get("modelVersion") or ""), usage=usage)
    cands = b.get("candidates")
    if not isinstance(cands, list) or not cands:
        if norm(b.get("promptFeedback")).get("blockReason"):
            resp.finish_reason = "content_filter"
            return resp
        raise ProviderProtocolError("upstream reply has no candidates")
    cand = norm(cands[0])
    raw_parts = norm(cand.get("content")).get("parts") or []
    resp.parts = [p for p in (response_part(x) for x in raw_parts) if p is not None]
    resp.finish_reason = finish_in(cand.get("finishReason"), any(isinstance(p, ToolCallPart) for p in resp.parts))
    return resp


def encode_response(resp: Response) -> dict[str, Any]:
    parts = [d for d in (reply_part(p) for p in resp.parts) if d is not None]
    return {
        "candidates": [candidate(parts, FINISH_OUT[resp.finish_reason])],
        "usageMetadata": encode_usage(resp.usage),
        "modelVersion": resp.model,
        "responseId": resp.id or f"llmproxy-{int(time.time())}",
    }
