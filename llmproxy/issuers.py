"""Who issued a conversation's signatures, so no upstream gets one another account issued.

Some upstreams sign what they send (reasoning, tool calls) and check the signature when a
client sends it back; a signature is only good where its issuer accepts it
(docs/routing.md, "Switching provider mid-conversation"):

* Anthropic: the issuer is Anthropic itself. Thinking signatures verify on any key and any
  account (Anthropic documents them as valid across its own API, Bedrock and Vertex), so a
  conversation keeps them when it moves between Anthropic credentials: nothing to track.
* Gemini (``thoughtSignature``) and OpenAI Responses (``reasoning`` items: ``encrypted_content``
  and ``rs_`` ids): the issuer is the credential (the API key's project or organisation, the
  OAuth account). Another credential refuses them (``Invalid thought signature``, ``could not
  be decrypted``), even of the same provider type.

So for the second kind the gateway remembers, per conversation (``llmproxy.affinity``) and
dialect, which credential served it: ``ISSUER_TTL`` from the last turn, in the shared store.
A turn sent to another credential (failover, cooldown, a change of route) goes without the
signatures (Gemini: the documented ``skip_thought_signature_validator`` on function calls;
Responses: without the reasoning items); from then on the conversation's signatures are
mixed and every later turn goes without them. Back on the first credential alone that is
conservative (its own signatures would pass) but never wrong.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from .formats._gemini_wire import SKIP_SIGNATURE
from .state import StateStore, StoreError

log = logging.getLogger("llmproxy.issuers")

#: Dialects whose signatures only the issuing credential accepts.
BOUND = ("gemini", "openai_responses")
#: Seconds a conversation's issuer is remembered after its last turn (conversations resume).
ISSUER_TTL = 24 * 3600.0
MIXED = "*"


def _key(session: str, dialect: str) -> str:
    return f"iss:{dialect}:{hashlib.sha256(session.encode()).hexdigest()[:32]}"


async def foreign(store: StateStore, session: str | None, dialect: str, credential: str) -> bool:
    """Whether the conversation holds ``dialect`` signatures some other credential issued."""
    if not session or dialect not in BOUND:
        return False
    try:
        issuer = await store.get(_key(session, dialect))
    except StoreError as exc:
        log.warning("routing store unavailable, signatures sent as the client sent them: %s", exc)
        return False
    return issuer is not None and issuer != credential


async def record(store: StateStore, session: str | None, dialect: str, credential: str) -> None:
    """``credential`` served the conversation's latest turn in ``dialect``."""
    if not session or dialect not in BOUND:
        return
    key = _key(session, dialect)
    try:
        issuer = await store.get(key)
        await store.put(key, credential if issuer in (None, credential) else MIXED, ISSUER_TTL)
    except StoreError as exc:
        log.warning("routing store unavailable, issuer of %s not recorded: %s", dialect, exc)


def strip(body: dict[str, Any], dialect: str) -> dict[str, Any]:
    """``body`` (already in ``dialect``) without the signatures a credential issued."""
    if dialect == "gemini":
        return _strip_gemini(body)
    if dialect == "openai_responses":
        return _strip_responses(body)
    return body


def _strip_gemini(body: dict[str, Any]) -> dict[str, Any]:
    contents = []
    for content in body.get("contents") or []:
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            contents.append(content)
            continue
        parts, first_call = [], True
        for part in content["parts"]:
            if not isinstance(part, dict) or "thoughtSignature" not in part:
                first_call = first_call and not (isinstance(part, dict) and "functionCall" in part)
                parts.append(part)
                continue
            part = {k: v for k, v in part.items() if k != "thoughtSignature"}
            if "functionCall" in part:
                if first_call:  # Gemini 3 validates the first call of each step
                    part["thoughtSignature"] = SKIP_SIGNATURE
                first_call = False
            elif part.get("thought") or (set(part) <= {"text"} and not part.get("text")):
                continue  # a thought (or an empty text) that only carried the signature
            parts.append(part)
        contents.append({**content, "parts": parts})
    return {**body, "contents": contents}


def _strip_responses(body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("input")
    if not isinstance(items, list):
        return body
    kept = []
    for item in items:
        if isinstance(item, dict) and item.get("type") == "reasoning":
            continue
        if isinstance(item, dict) and item.get("type") in ("function_call", "message") and "id" in item:
            item = {k: v for k, v in item.items() if k != "id"}  # ids name the issuer's stored items
        kept.append(item)
    return {**body, "input": kept}


__all__ = ["BOUND", "ISSUER_TTL", "foreign", "record", "strip"]
