"""Gemini through Code Assist (``cloudcode-pa.googleapis.com/v1internal``), for Google accounts.

A Google account's token is accepted by Code Assist, not by the public Gemini API. Code
Assist takes the ordinary Gemini request inside a wrapper naming the model (without
``models/``) and the account's project, and wraps every reply, streamed or not, in
``{"response": ..., "traceId": ...}``. ``wrap`` builds the request; ``unwrap`` and
``StreamUnwrapper`` give the gateway plain Gemini replies, so the Gemini codec does the rest.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from .._json import dumps, loads

CODE_ASSIST_URL = "https://cloudcode-pa.googleapis.com"
_ACTIONS = {"count_tokens": "countTokens"}


def url(base: str, *, stream: bool, endpoint: str = "chat") -> str:
    if endpoint == "chat":
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    elif endpoint in _ACTIONS:
        action = _ACTIONS[endpoint]
    else:
        raise ValueError(f"Code Assist has no {endpoint!r} endpoint")
    return f"{base.rstrip('/')}/v1internal:{action}"


def wrap(body: dict[str, Any], *, model: str, project: str | None, endpoint: str = "chat") -> dict[str, Any]:
    body.pop("model", None)
    if endpoint == "count_tokens":  # countTokens keeps the prefix and takes no project
        return {"request": {"model": f"models/{model.removeprefix('models/')}", "contents": body.get("contents", [])}}
    out: dict[str, Any] = {"model": model.removeprefix("models/"), "user_prompt_id": uuid.uuid4().hex, "request": body}
    if project:
        out["project"] = project
    return out


def unwrap(raw: bytes) -> bytes:
    """A Code Assist reply body -> the plain Gemini body inside it (anything else unchanged)."""
    try:
        data = loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict) and isinstance(data.get("response"), dict):
        inner: dict[str, Any] = data["response"]
        if data.get("traceId") and "responseId" not in inner:
            inner["responseId"] = data["traceId"]
        return dumps(inner)
    return raw


class StreamUnwrapper:
    """Rewrites each SSE ``data:`` line of a Code Assist stream to the Gemini chunk it wraps."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> bytes:
        self._buf += chunk
        head, sep, rest = self._buf.rpartition(b"\n")
        if not sep:
            return b""
        self._buf = rest
        return b"".join(_line(line) for line in (head + b"\n").splitlines(keepends=True))

    def close(self) -> bytes:
        tail, self._buf = self._buf, b""
        return _line(tail) if tail else b""


def _line(line: bytes) -> bytes:
    if not line.startswith(b"data:"):
        return line
    body = line[5:].strip()
    try:
        data = json.loads(body)
    except ValueError:
        return line
    if not isinstance(data, dict) or not isinstance(data.get("response"), dict):
        return line
    ending = line[len(line.rstrip(b"\r\n")) :]
    return b"data: " + json.dumps(data["response"], separators=(",", ":")).encode() + ending
