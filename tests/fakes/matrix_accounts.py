"""The contract matrix's account upstreams: Copilot, Claude with an OAuth account, Gemini via Code Assist.

Each is the matrix upstream of its dialect with an account credential (``credential``:
the row's fields, a token that does not expire during the run) and the checks the real
service makes on top: Copilot's editor headers and ``X-Initiator``, Claude's OAuth
bearer with its beta and no ``x-api-key``, Code Assist's wrapper (requests carry
``{"model", "project", "request"}``, replies are wrapped in ``{"response": ...}``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from .google_oauth import wrap
from .matrix import AnthropicUpstream, ChatUpstream, GeminiUpstream, Sent, Upstream
from .server import Recorded, Reply, Stream

LATER = datetime.now(UTC) + timedelta(days=1)


class CopilotUpstream(ChatUpstream):
    name, type, suffix = "copilot", "copilot", ""
    auth_type = "device_flow"
    credential: dict[str, Any] = {"access_token": "tid=matrix;exp=1", "refresh_token": "ghu_matrix",
                                  "expires_at": LATER}  # fmt: skip

    def sent(self, rec: Recorded) -> Sent:
        h = rec.headers
        assert h["authorization"] == "Bearer tid=matrix;exp=1", h.get("authorization")
        assert h["editor-version"] and h["editor-plugin-version"] and h["copilot-integration-id"], h
        assert h["x-initiator"] in ("user", "agent") and h["user-agent"].startswith("llmproxy/"), h
        assert rec.path == "/chat/completions", rec.path
        return super().sent(rec)


class ClaudeOAuthUpstream(AnthropicUpstream):
    name, type = "claude-oauth", "claude"
    auth_type = "oauth"
    credential: dict[str, Any] = {"access_token": "sk-ant-oat01-matrix", "refresh_token": "sk-ant-ort01-matrix",
                                  "expires_at": LATER}  # fmt: skip

    def sent(self, rec: Recorded) -> Sent:
        h = rec.headers
        assert "x-api-key" not in h and h["authorization"] == "Bearer sk-ant-oat01-matrix", h
        assert "oauth-2025-04-20" in h["anthropic-beta"].split(","), h
        return super().sent(rec)


class CodeAssistUpstream(GeminiUpstream):
    name = "code-assist"
    auth_type = "oauth"
    credential: dict[str, Any] = {"access_token": "ya29.matrix", "refresh_token": "1//matrix", "expires_at": LATER,
                                  "extra": {"project_id": "matrix-project"}}  # fmt: skip

    def shows_thinking(self, body: Any) -> bool:
        return super().shows_thinking(body.get("request") or {})

    def build(self, turn: Any, stream: bool) -> Reply | Stream:
        return wrap(super().build(turn, stream))

    def broken_stream(self) -> Stream:
        broken = super().broken_stream()
        first = wrap(dataclasses.replace(broken, frames=broken.frames[:1]))
        assert isinstance(first, Stream)
        return dataclasses.replace(broken, frames=[*first.frames, *broken.frames[1:]])

    def sent(self, rec: Recorded) -> Sent:
        b = rec.body
        assert rec.headers["authorization"] == "Bearer ya29.matrix", rec.headers
        assert b["project"] == "matrix-project" and not b["model"].startswith("models/"), b
        action = rec.path.partition("/v1internal:")[2]
        assert action in ("generateContent", "streamGenerateContent"), rec.path
        inner = dataclasses.replace(rec, path=f"/v1beta/models/{b['model']}:{action}", body=b["request"])
        return super().sent(inner)


ACCOUNT_UPSTREAMS: dict[str, Upstream] = {
    u.name: u for u in (CopilotUpstream(), ClaudeOAuthUpstream(), CodeAssistUpstream())
}
