"""Session affinity: what ties one conversation's requests together, and how long each
provider type keeps a prompt cache warm.

A conversation that goes back to the credential that served its last turn finds the
upstream's prompt cache (Anthropic, OpenAI, Gemini and the services in front of them cache
per account or key, for minutes). ``routing.session_affinity_ttl`` unset means: stick for
``PROMPT_CACHE_TTL[provider type]`` seconds where the type has a prompt cache, not at all
elsewhere; a number is that many seconds on every provider; 0 turns affinity off.

The session is what the client sends to name its conversation (Claude Code's
``X-Claude-Code-Session-Id`` header or the ``session_id`` inside ``metadata.user_id``,
Codex's ``session-id`` header or ``prompt_cache_key``, an explicit ``x-llmproxy-session``),
else a fingerprint of the conversation's start (its system prompt and first message: what
Gemini CLI's requests share across turns, and the prefix a prompt cache keys on). A
fingerprint only steers requests that continue a conversation (they carry an assistant
turn), so first messages stay spread by the strategy. Sessions are scoped to the API key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from ._json import loads
from .model import Message, Request, TextPart

#: Seconds a provider type's prompt cache stays warm without use (the default affinity).
#: Anthropic's cache lives 5 minutes from its last read; OpenAI's 5-10 minutes; Gemini's
#: implicit cache and the services routing to these (OpenRouter, Copilot, Fireworks) are
#: of the same order. Self-hosted servers (``openai-compatible``) share one cache across
#: every key, so affinity buys nothing there.
PROMPT_CACHE_TTL: dict[str, float] = {
    "claude": 300.0,
    "anthropic": 300.0,
    "openai": 300.0,
    "gemini": 300.0,
    "copilot": 300.0,
    "openrouter": 300.0,
    "fireworks": 300.0,
}

#: Headers naming a conversation, first match wins (lower-case).
SESSION_HEADERS = ("x-llmproxy-session", "x-session-id", "x-claude-code-session-id", "session-id", "session_id")


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation's affinity key; ``follow``: whether this request goes where it went."""

    key: str
    follow: bool = True


def ttl_for(setting: float | None, provider_type: str) -> float:
    """Affinity seconds for one provider: the setting when given, else its prompt cache's."""
    if setting is not None:
        return setting
    return PROMPT_CACHE_TTL.get(provider_type, 0.0)


def session_of(headers: Mapping[str, str], req: Request, scope: object = None) -> Session | None:
    """The conversation ``req`` belongs to (see the module doc), scoped to ``scope`` (the key)."""
    named = _named(headers, req)
    if named:
        return Session(_scoped(scope, "id", named))
    fingerprint = _fingerprint(req.messages)
    if fingerprint is None:
        return None
    follow = any(m.role == "assistant" for m in req.messages)
    return Session(_scoped(scope, "fp", fingerprint), follow=follow)


def _named(headers: Mapping[str, str], req: Request) -> str | None:
    for name in SESSION_HEADERS:
        if headers.get(name):
            return headers[name]
    user_id = req.metadata.get("user_id") if isinstance(req.metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        return _claude_session(user_id)
    cache_key = req.extra.get("prompt_cache_key") if isinstance(req.extra, dict) else None
    if isinstance(cache_key, str) and cache_key:
        return cache_key
    return req.user or None


def _claude_session(user_id: str) -> str:
    """Claude Code's ``metadata.user_id`` is JSON with a ``session_id`` (older releases: a
    ``user_…_session_<id>`` string); anything else is taken whole."""
    if user_id.startswith("{"):
        try:
            data = loads(user_id)
        except ValueError:
            return user_id
        if isinstance(data, dict) and isinstance(data.get("session_id"), str) and data["session_id"]:
            return str(data["session_id"])
    _, sep, tail = user_id.rpartition("_session_")
    return tail if sep and tail else user_id


def _fingerprint(messages: list[Message]) -> str | None:
    """A digest of the system prompt(s) before the first other message, and that message."""
    head: list[str] = []
    for m in messages:
        head.append(m.role + "\0" + "\0".join(p.text for p in m.parts if isinstance(p, TextPart)))
        if m.role != "system":
            break
    else:
        return None
    return hashlib.sha256(json.dumps(head).encode()).hexdigest()[:32]


def _scoped(scope: object, kind: str, value: str) -> str:
    return f"{scope}:{kind}:{value}" if scope is not None else f"{kind}:{value}"


__all__ = ["PROMPT_CACHE_TTL", "SESSION_HEADERS", "Session", "session_of", "ttl_for"]
