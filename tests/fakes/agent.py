"""A scripted coding-agent model behind any upstream dialect, for driving the real agent CLIs.

The real CLIs (Claude Code, Codex, Gemini CLI) send whatever their current release sends:
big system prompts, dozens of tools, side calls (titles, summaries, classifiers). This model
answers all of it the way a real one would, in the upstream's own wire format:

- a request that offers the CLI's shell tool and carries no tool result yet is answered with
  a call to that tool running ``printf 'agent-%s%s\\n' A B``: its output (``agent-AB``)
  appears nowhere in the command, so seeing it come back proves the CLI really ran the tool
  (no ``$(...)``: Gemini CLI refuses command substitution);
- a request carrying that tool result is answered with text quoting the output;
- anything else (side calls without the shell tool) gets a short text, or a JSON object
  when the request asks for one.

Every request is checked with the dialect's ``Upstream.sent`` (the rules the real API
answers 400 for); what failed is kept in ``errors`` and answered with a 400.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from .matrix import Turn, Upstream
from .server import Recorded, Reply, Stream

#: The shell tools of the CLIs, by the name each CLI gives it.
SHELL_TOOLS = ("Bash", "run_shell_command", "shell", "shell_command", "exec_command", "local_shell")


#: Account upstreams speak a public dialect underneath their own auth and wrapping.
ACCOUNT_DIALECTS = {"copilot": "chat", "claude-oauth": "anthropic", "code-assist": "gemini"}


def offered_tools(dialect: str, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Tool name -> parameter schema, as the request offers them in its dialect."""
    out: dict[str, dict[str, Any]] = {}
    dialect = ACCOUNT_DIALECTS.get(dialect, dialect)
    if dialect == "gemini" and isinstance(body.get("request"), dict):  # Code Assist wraps the Gemini body
        body = body["request"]
    tools = body.get("tools") or []
    if dialect == "kiro":  # CodeWhisperer: the current message's context holds them
        user = ((body.get("conversationState") or {}).get("currentMessage") or {}).get("userInputMessage") or {}
        tools = (user.get("userInputMessageContext") or {}).get("tools") or []
    for t in tools:
        if dialect == "chat" and t.get("type") == "function":
            out[t["function"]["name"]] = t["function"].get("parameters") or {}
        elif dialect == "responses" and t.get("type") in ("function", "local_shell"):
            out[t.get("name") or t["type"]] = t.get("parameters") or {}
        elif dialect == "anthropic" and "name" in t:
            out[t["name"]] = t.get("input_schema") or {}
        elif dialect == "kiro" and "toolSpecification" in t:
            spec = t["toolSpecification"]
            out[spec["name"]] = (spec.get("inputSchema") or {}).get("json") or {}
        elif dialect == "gemini":
            for d in t.get("functionDeclarations") or t.get("function_declarations") or []:
                out[d["name"]] = d.get("parametersJsonSchema") or d.get("parameters") or {}
    return out


def shell_args(schema: dict[str, Any], command: str) -> dict[str, Any]:
    """Arguments for a shell tool, shaped by its schema: ``cmd`` or ``command``, string or argv."""
    props = schema.get("properties") or {}
    if "cmd" in props:
        return {"cmd": command}
    if (props.get("command") or {}).get("type") == "array":
        return {"command": ["bash", "-lc", command]}
    return {"command": command}


def _filler(schema: dict[str, Any]) -> Any:
    """A value matching a (JSON-mode) schema: what a side call asking for JSON gets."""
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if isinstance(kind, str):
        kind = kind.lower()
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: _filler(v) for k, v in props.items()}
    if schema.get("enum"):
        return schema["enum"][0]
    return {"boolean": False, "integer": 0, "number": 0, "array": []}.get(str(kind), "user")


@dataclass
class Agent:
    """The scripted model for one test: use it as the fake upstream's default script."""

    upstream: Upstream
    a: int = field(default_factory=lambda: random.randint(1000, 4999))
    b: int = field(default_factory=lambda: random.randint(5000, 9999))
    errors: list[str] = field(default_factory=list)
    #: (path, what was answered): "call <tool>", "answer", "side", "json", "count".
    log: list[tuple[str, str]] = field(default_factory=list)
    results: list[str] = field(default_factory=list)  # tool results that carried the marker

    @property
    def command(self) -> str:
        return f"printf 'agent-%s%s\\n' {self.a} {self.b}"

    @property
    def marker(self) -> str:
        return f"agent-{self.a}{self.b}"

    def __call__(self, rec: Recorded) -> Reply | Stream:
        try:
            return self._answer(rec)
        except Exception as exc:  # any rule the real API enforces, or a shape we did not expect
            self.errors.append(f"{rec.method} {rec.path}: {type(exc).__name__}: {exc}")
            return self.upstream.error(400)

    def _stream(self, rec: Recorded) -> bool:
        if self.upstream.name in ("gemini", "code-assist"):
            return rec.path.endswith(":streamGenerateContent")
        if self.upstream.name == "kiro":
            return True  # every Kiro reply is an event stream
        return bool(rec.body.get("stream"))

    def _answer(self, rec: Recorded) -> Reply | Stream:
        if rec.path.endswith(":countTokens"):
            self.log.append((rec.path, "count"))
            return Reply({"totalTokens": 100})
        if rec.path.endswith("/count_tokens"):
            self.log.append((rec.path, "count"))
            return Reply({"input_tokens": 100})
        sent = self.upstream.sent(rec)
        stream = self._stream(rec)
        results = [json.dumps(content) for kind, _, _, content in sent.history if kind == "result"]
        found = [r for r in results if re.search(rf"{self.marker}(?![0-9])", r)]
        tools = offered_tools(self.upstream.name, rec.body)
        shell = next((n for n in SHELL_TOOLS if n in tools), None)
        if found:
            self.results += found
            self.log.append((rec.path, "answer"))
            return self.upstream.build(Turn([f"The command printed {self.marker}."]), stream)
        if shell is not None and not results:
            self.log.append((rec.path, f"call {shell}"))
            call = (shell, shell_args(tools[shell], self.command))
            return self.upstream.build(Turn(["Running it."], calls=[call]), stream)
        if sent.schema is not None:
            self.log.append((rec.path, "json"))
            return self.upstream.build(Turn([json.dumps(_filler(sent.schema))]), stream)
        self.log.append((rec.path, "side"))
        return self.upstream.build(Turn(["No marker here." if results else "OK."]), stream)
