"""What ties a conversation's requests together, as each coding agent sends it."""

from __future__ import annotations

import json

from llmproxy.affinity import PROMPT_CACHE_TTL, session_of, ttl_for
from llmproxy.model import Message, Request, TextPart, ToolCallPart


def req(*messages: Message, **kw: object) -> Request:
    return Request(model="m", messages=list(messages), **kw)  # type: ignore[arg-type]


def user(text: str) -> Message:
    return Message("user", [TextPart(text)])


def test_claude_code_is_known_by_its_session_header_or_the_session_in_metadata_user_id() -> None:
    by_header = session_of({"x-claude-code-session-id": "s-1"}, req(user("hi")), "k1")
    assert by_header is not None and by_header.key == "k1:id:s-1" and by_header.follow
    user_id = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "s-2"})
    by_metadata = session_of({}, req(user("hi"), metadata={"user_id": user_id}), "k1")
    assert by_metadata is not None and by_metadata.key == "k1:id:s-2"
    legacy = session_of({}, req(user("hi"), metadata={"user_id": "user_abc_account__session_s-3"}))
    assert legacy is not None and legacy.key == "id:s-3"


def test_codex_is_known_by_its_session_id_header_or_prompt_cache_key() -> None:
    by_header = session_of({"session-id": "c-1"}, req(user("hi"), extra={"prompt_cache_key": "c-2"}), 7)
    assert by_header is not None and by_header.key == "7:id:c-1"
    by_cache_key = session_of({}, req(user("hi"), extra={"prompt_cache_key": "c-2"}), 7)
    assert by_cache_key is not None and by_cache_key.key == "7:id:c-2"


def test_a_conversation_without_a_name_is_known_by_its_start_and_followed_once_it_continues() -> None:
    system = Message("system", [TextPart("You are a CLI agent.")])
    first = session_of({}, req(system, user("list the files")), "k")
    assert first is not None and not first.follow  # a first turn is spread by the strategy
    call = Message("assistant", [ToolCallPart("t1", "shell", "{}")])
    later = session_of({}, req(system, user("list the files"), call), "k")
    assert later is not None and later.follow and later.key == first.key
    other_key = session_of({}, req(system, user("list the files"), call), "k2")
    other_start = session_of({}, req(system, user("read the docs"), call), "k")
    assert other_key is not None and other_start is not None
    assert len({later.key, other_key.key, other_start.key}) == 3
    assert session_of({}, req(system), "k") is None


def test_the_default_affinity_is_the_provider_types_prompt_cache_lifetime() -> None:
    assert ttl_for(None, "claude") == PROMPT_CACHE_TTL["claude"] > 0
    assert ttl_for(None, "openai-compatible") == 0
    assert ttl_for(0, "claude") == 0 and ttl_for(60, "openai-compatible") == 60
