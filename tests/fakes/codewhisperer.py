"""CodeWhisperer's ``generateAssistantResponse`` (Kiro) as it answers: real event-stream frames.

* ``POST /generateAssistantResponse`` needs a live Bearer token (403 "The bearer token
  included in the request is invalid." otherwise), ``application/json`` (or the legacy
  ``application/x-amz-json-1.0`` with its ``X-Amz-Target``) and a ``conversationState``
  the service accepts (``problem`` lists what it refuses, each a 400 with a reason); the
  reply is binary ``application/vnd.amazon.eventstream`` frames with correct CRCs.
* ``GET /getUsageLimits`` needs the same token (the health probe).

Frames are built here with ``llmproxy.eventstream.encode`` (checked against the
reference's worked example in tests/unit/test_eventstream.py); ``corrupt`` and
``truncated`` make the broken ones.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from llmproxy.eventstream import encode

from ._gate import AccountServer, Tokens, bearer
from .server import Recorded, Reply, Stream

PATH = "/generateAssistantResponse"
USAGE_PATH = "/getUsageLimits"
CONTENT_TYPE = "application/vnd.amazon.eventstream"
TARGET = "AmazonCodeWhispererStreamingService.GenerateAssistantResponse"
MODEL_IDS = ("auto", "claude-sonnet-4", "claude-sonnet-4.5", "claude-sonnet-4.6", "claude-haiku-4.5",
             "claude-opus-4.5", "claude-opus-4.6", "claude-3-7-sonnet-20250219")  # fmt: skip
IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
INVALID_TOKEN = "The bearer token included in the request is invalid."
_STATE_KEYS = {"chatTriggerType", "conversationId", "currentMessage", "history", "agentContinuationId",
               "agentTaskType", "customizationArn"}  # fmt: skip
_USER_KEYS = {"content", "modelId", "origin", "images", "userInputMessageContext", "userIntent"}


# -- frames ------------------------------------------------------------------------------
def event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode(headers, json.dumps(payload).encode())


def exception(kind: str, message: str) -> bytes:
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return encode(headers, json.dumps({"message": message}).encode())


def corrupt(frame: bytes) -> bytes:
    """The frame with one payload byte flipped: its message CRC32 no longer matches."""
    i = len(frame) - 6
    return frame[:i] + bytes([frame[i] ^ 0x01]) + frame[i + 1 :]


def truncated(frame: bytes) -> bytes:
    return frame[: len(frame) // 2]


def frames(
    texts: list[str],
    *,
    calls: list[tuple[str, dict[str, Any]]] | None = None,
    percent: float | None = 1.5,
    model: str = "claude-sonnet-4.5",
    credits: float = 0.17,
) -> list[bytes]:
    """A typical reply: text deltas, tool uses (input in two fragments, then ``stop``), metering, context usage."""
    out = [event("assistantResponseEvent", {"content": t, "modelId": model} if i == 0 else {"content": t})
           for i, t in enumerate(texts)]  # fmt: skip
    for i, (name, args) in enumerate(calls or []):
        ident, text = f"tooluse_up{i}", json.dumps(args)
        for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
            out.append(event("toolUseEvent", {"name": name, "toolUseId": ident, "input": piece}))
        out.append(event("toolUseEvent", {"name": name, "toolUseId": ident, "stop": True}))
    out.append(event("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": credits}))
    if percent is not None:
        out.append(event("contextUsageEvent", {"contextUsagePercentage": percent}))
    return out


def stream(chunks: list[bytes], **kw: Any) -> Stream:
    return Stream(chunks, headers={"content-type": CONTENT_TYPE}, **kw)


def error(status: int, message: str, reason: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """An error before the stream, as the service words it (``{"message", "reason"}``)."""
    body: dict[str, Any] = {"message": message}
    if reason is not None:
        body["reason"] = reason
    return Reply(body, status=status, headers={"x-amzn-errortype": _ERROR_TYPES.get(status, "InternalServerException"),
                                               **(headers or {})})  # fmt: skip


_ERROR_TYPES = {400: "ValidationException", 402: "ServiceQuotaExceededException", 403: "AccessDeniedException",
                429: "ThrottlingException"}  # fmt: skip


# -- what the service refuses ----------------------------------------------------------------
def problem(body: Any, *, profile_arn: str | None = None) -> str | None:
    """Why the service would answer 400 to this body, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("conversationState"), dict):
        return "conversationState is required"
    extra = set(body) - {"conversationState", "profileArn", "source", "inferenceConfig"}
    if extra:
        return f"unknown fields {sorted(extra)}"
    if profile_arn is not None and body.get("profileArn") != profile_arn:
        return "profileArn does not match the token"
    state = body["conversationState"]
    if set(state) - _STATE_KEYS:
        return f"unknown conversationState fields {sorted(set(state) - _STATE_KEYS)}"
    if state.get("chatTriggerType") != "MANUAL":
        return "chatTriggerType must be MANUAL"
    if not isinstance(state.get("conversationId"), str) or not state["conversationId"]:
        return "conversationId is required"
    current = state.get("currentMessage")
    if not isinstance(current, dict) or set(current) != {"userInputMessage"}:
        return "currentMessage must be a userInputMessage"
    history = state.get("history", [])
    if not isinstance(history, list):
        return "history must be a list"
    turns = [*history, current]
    tools: set[str] = set()
    for spec in (current["userInputMessage"].get("userInputMessageContext") or {}).get("tools") or []:
        why = _tool_problem(spec)
        if why:
            return why
        tools.add(spec["toolSpecification"]["name"].lower())
    asked: list[str] = []
    seen: set[str] = set()
    for i, turn in enumerate(turns):
        want = "userInputMessage" if i % 2 == 0 else "assistantResponseMessage"
        if not isinstance(turn, dict) or list(turn) != [want]:
            return "Invalid message sequence: history must alternate user and assistant, starting with the user"
        msg = turn[want]
        if not isinstance(msg, dict) or not isinstance(msg.get("content"), str):
            return f"turn {i}: content must be a string"
        if want == "assistantResponseMessage":
            asked = []
            for use in msg.get("toolUses") or []:
                if not isinstance(use.get("input"), dict) or not use.get("toolUseId") or not use.get("name"):
                    return f"turn {i}: a toolUse needs toolUseId, name and an input object"
                if use["toolUseId"] in seen:
                    return f"duplicate toolUseId {use['toolUseId']}"
                if use["name"].lower() not in tools:
                    return f"tool {use['name']} is used in the history but not declared"
                seen.add(use["toolUseId"])
                asked.append(use["toolUseId"])
            continue
        why = _user_problem(msg, i, is_current=i == len(turns) - 1)
        if why:
            return why
        results = [r.get("toolUseId") for r in (msg.get("userInputMessageContext") or {}).get("toolResults") or []]
        if sorted(results) != sorted(asked):
            return f"turn {i}: tool results {results} do not answer the tool uses {asked}"
        asked = []
    return None


def _user_problem(msg: dict[str, Any], i: int, *, is_current: bool) -> str | None:
    if set(msg) - _USER_KEYS:
        return f"turn {i}: unknown userInputMessage fields {sorted(set(msg) - _USER_KEYS)}"
    if not msg["content"].strip():
        return f"turn {i}: content must not be empty"
    if msg.get("modelId") not in MODEL_IDS:
        return f"INVALID_MODEL_ID: {msg.get('modelId')!r}"
    if msg.get("origin") != "AI_EDITOR":
        return f"turn {i}: origin must be AI_EDITOR"
    for img in msg.get("images") or []:
        if img.get("format") not in IMAGE_FORMATS:
            return f"turn {i}: image format {img.get('format')!r}"
        try:
            base64.b64decode((img.get("source") or {}).get("bytes") or "", validate=True)
        except binascii.Error:
            return f"turn {i}: image bytes are not base64"
    ctx = msg.get("userInputMessageContext") or {}
    if ctx.get("tools") and not is_current:
        return f"turn {i}: tools belong to the current message only"
    for r in ctx.get("toolResults") or []:
        if r.get("status") not in ("success", "error") or not isinstance(r.get("content"), list):
            return f"turn {i}: a toolResult needs a status and a content list"
        if not all(isinstance(c, dict) and isinstance(c.get("text"), str) for c in r["content"]):
            return f"turn {i}: toolResult content entries must be texts"
    return None


def _tool_problem(spec: Any) -> str | None:
    s = spec.get("toolSpecification") if isinstance(spec, dict) else None
    if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not 0 < len(s["name"]) <= 63:
        return "a tool needs a toolSpecification with a name of at most 63 characters"
    if not isinstance(s.get("description"), str) or not s["description"] or len(s["description"].encode()) > 10240:
        return f"tool {s['name']}: description must be 1-10240 bytes"
    schema = (s.get("inputSchema") or {}).get("json")
    if not isinstance(schema, dict):
        return f"tool {s['name']}: inputSchema.json must be an object"
    return None


# -- the server ----------------------------------------------------------------------------
class FakeCodeWhisperer(AccountServer):
    """The Kiro API: token checked, body validated, then the queued reply (default: "Hello from Kiro")."""

    def __init__(self, tokens: Tokens | None = None, *, profile_arn: str | None = None) -> None:
        super().__init__()
        self.tokens = tokens or Tokens("aoa")
        self.static: set[str] = set()
        self.profile_arn = profile_arn
        self.guard(PATH, self.check, lambda rec: stream(frames(["Hello", " from Kiro"])))
        self.guard(USAGE_PATH, self.check_token, Reply(
            {"subscriptionInfo": {"subscriptionTitle": "KIRO FREE"}, "daysUntilReset": 3,
             "usageBreakdownList": [{"resourceType": "AGENTIC_REQUEST", "currentUsageWithPrecision": 1.0,
                                     "usageLimitWithPrecision": 50.0}]}))  # fmt: skip

    def add_token(self, token: str) -> str:
        self.static.add(token)
        return token

    def check_token(self, rec: Recorded) -> Reply | None:
        tok = bearer(rec)
        if tok is None or not (tok in self.static or self.tokens.valid(tok)):
            return error(403, INVALID_TOKEN)
        return None

    def check(self, rec: Recorded) -> Reply | None:
        refused = self.check_token(rec)
        if refused is not None:
            return refused
        return refusal(rec, profile_arn=self.profile_arn)


def refusal(rec: Recorded, *, profile_arn: str | None = None) -> Reply | None:
    """The 400 (or 415) the service answers to this request's headers or body, or None."""
    kind = rec.headers.get("content-type", "").split(";")[0].strip()
    if kind == "application/x-amz-json-1.0":
        if rec.headers.get("x-amz-target") != TARGET:
            return error(400, "missing or wrong X-Amz-Target", "REQUEST_BODY_INVALID")
    elif kind != "application/json":
        return error(415, f"unsupported content type {kind!r}")
    if not rec.headers.get("user-agent"):
        return error(400, "missing user-agent")
    why = problem(rec.body, profile_arn=profile_arn)
    if why is not None:
        reason = "INVALID_MODEL_ID" if why.startswith("INVALID_MODEL_ID") else "INVALID_REQUEST"
        return error(400, "Improperly formed request: " + why, reason)
    return None
