"""The contract matrix's account upstreams: Copilot, Claude with an OAuth account, Gemini via Code Assist, Kiro.

Each is the matrix upstream of its dialect with an account credential (``credential``:
the row's fields, a token that does not expire during the run) and the checks the real
service makes on top: Copilot's editor headers and ``X-Initiator``, Claude's OAuth
bearer with its beta and no ``x-api-key``, Code Assist's wrapper (requests carry
``{"model", "project", "request"}``, replies are wrapped in ``{"response": ...}``), Kiro's
``conversationState`` validated as CodeWhisperer does (a 400 otherwise) and its replies
as binary event-stream frames, with usage Kiro-style: input tokens from
``contextUsagePercentage``, output tokens counted by the proxy's tokenizer.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from llmproxy.tokens import count_text

from . import codewhisperer as cw
from .google_oauth import wrap
from .matrix import AnthropicUpstream, ChatUpstream, GeminiUpstream, Sent, Turn, Upstream
from .server import Recorded, Reply, Script, Stream

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


class KiroUpstream(Upstream):
    name, type, suffix = "kiro", "kiro", ""
    model = "claude-sonnet-4.5"
    auth_type = "device_flow"
    profile_arn = "arn:aws:codewhisperer:us-east-1:699475941385:profile/MATRIX"
    credential: dict[str, Any] = {"access_token": "aoaMatrix", "refresh_token": "aorMatrix", "expires_at": LATER,
                                  "extra": {"auth_method": "social", "profile_arn": profile_arn}}  # fmt: skip
    #: Kiro's stream says nothing about streaming: every reply is an event stream.
    stream_on_wire = False

    def shows_thinking(self, body: Any) -> bool:
        return False

    def reply(self, turn: Turn, stream: bool) -> Script:
        def answer(rec: Recorded) -> Reply | Stream:
            refused = self.refusal(rec)
            return refused if refused is not None else self.build(dataclasses.replace(turn, thinking=[]), stream)

        return answer

    def refusal(self, rec: Recorded) -> Reply | None:
        if rec.headers.get("authorization") != "Bearer aoaMatrix":
            return cw.error(403, cw.INVALID_TOKEN)
        return cw.refusal(rec, profile_arn=self.profile_arn)

    def build(self, turn: Turn, stream: bool) -> Reply | Stream:
        chunks = cw.frames(turn.texts, calls=turn.calls, percent=turn.prompt / 200_000 * 100, model=self.model)
        return cw.stream(chunks)

    def usage(self, turn: Turn) -> tuple[int, int]:
        said = "".join(turn.texts) + "".join(json.dumps(a) for _, a in turn.calls)
        return turn.prompt, count_text(said)

    def error(self, status: int, retry_after: str | None = None) -> Reply:
        reason = {429: "THROTTLING", 402: "MONTHLY_REQUEST_COUNT"}.get(status)
        return cw.error(status, "upstream says no", reason, {"retry-after": retry_after} if retry_after else None)

    def broken_stream(self) -> Stream:
        return cw.stream([cw.event("assistantResponseEvent", {"content": "Hel"}),
                          cw.exception("InternalServerException", "upstream overloaded")])  # fmt: skip

    def sent(self, rec: Recorded) -> Sent:
        refused = self.refusal(rec)
        assert refused is None, refused.body
        b = rec.body
        state = b["conversationState"]
        turns = [*state["history"], state["currentMessage"]]
        history: list[tuple[str, str | None, str | None, Any]] = []
        images: list[tuple[str, bytes]] = []
        for turn in turns:
            if "assistantResponseMessage" in turn:
                for use in turn["assistantResponseMessage"].get("toolUses") or []:
                    history.append(("call", use["toolUseId"], use["name"], use["input"]))
                continue
            user = turn["userInputMessage"]
            for r in (user.get("userInputMessageContext") or {}).get("toolResults") or []:
                history.append(("result", r["toolUseId"], None, "".join(c["text"] for c in r["content"])))
            images += [("image/" + i["format"], base64.b64decode(i["source"]["bytes"], validate=True))
                       for i in user.get("images") or []]  # fmt: skip
        current = state["currentMessage"]["userInputMessage"]
        first = turns[0]["userInputMessage"]["content"]
        system = None
        if first.startswith("--- SYSTEM PROMPT ---\n"):
            system = first.removeprefix("--- SYSTEM PROMPT ---\n").partition("\n--- END SYSTEM PROMPT ---")[0]
        tools = (current.get("userInputMessageContext") or {}).get("tools") or []
        return Sent(
            model=current["modelId"], stream=None, history=history, images=images, max_tokens=None, schema=None,
            reasoning=None, tools=[t["toolSpecification"]["name"] for t in tools], system=system, body=b,
        )  # fmt: skip


ACCOUNT_UPSTREAMS: dict[str, Upstream] = {
    u.name: u for u in (CopilotUpstream(), ClaudeOAuthUpstream(), CodeAssistUpstream(), KiroUpstream())
}
