"""What coding-agent CLIs send beyond the basics, through the official SDK to every upstream.

Claude Code puts ``{"role": "system"}`` entries in ``messages`` mid-conversation (with the
``anthropic-beta`` value ``mid-conversation-system-2026-04-07``) and marks tools, tool
results and images with ``cache_control``. The gateway must take all of it (never the 400
Anthropic's pre-beta validation gave), keep it as sent for an Anthropic upstream, and put
each mid-conversation system text where the upstream's dialect keeps system text, in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.conftest import PNG, Pair
from tests.fakes.matrix import Turn

FROM_ANTHROPIC = pytest.mark.parametrize(
    "pair", ["anthropic->chat", "anthropic->responses", "anthropic->anthropic", "anthropic->gemini"], indirect=True
)
BETAS = "claude-code-20250219,mid-conversation-system-2026-04-07,context-management-2025-06-27"
MID = "The user's working directory changed to /srv/app."
CACHE = {"type": "ephemeral"}


def claude_code_messages() -> list[dict[str, Any]]:
    """A second turn as Claude Code sends it: a tool call answered, then a system note."""
    return [
        {"role": "user", "content": [{"type": "text", "text": "List the files."},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": PNG}, "cache_control": CACHE}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                           "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt",
                                      "cache_control": CACHE}]},
        {"role": "system", "content": MID},
        {"role": "user", "content": "And now?"},
    ]  # fmt: skip


def ask(pair: Pair) -> Any:
    sdk = pair.client.sdk  # type: ignore[attr-defined]
    return sdk.messages.create(
        model=pair.model, max_tokens=256, system="You are Claude Code.", messages=claude_code_messages(),
        tools=[{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                "cache_control": CACHE}],
        metadata={"user_id": "user_abc_account__session_1"},
        extra_headers={**pair.client.headers, "anthropic-beta": BETAS},
    )  # fmt: skip


@FROM_ANTHROPIC
def test_it_takes_mid_conversation_system_messages_to_every_upstream(pair: Pair) -> None:
    pair.script(pair.upstream.reply(Turn(["Done."]), False))
    got = ask(pair)
    assert "".join(b.text for b in got.content if b.type == "text") == "Done."
    sent = pair.sent()
    body, name = sent.body, pair.upstream.name
    if name == "anthropic":  # passthrough: as sent, with every beta the client asked for
        assert body["messages"] == claude_code_messages()
        assert pair.fake.requests[0].headers["anthropic-beta"].split(",") == BETAS.split(",")
        assert body["tools"][0]["cache_control"] == CACHE
        return
    if name == "chat":  # Chat keeps system messages anywhere: in place, after the tool result
        roles = [(m["role"], m["content"] if m["role"] == "system" else None) for m in body["messages"]]
        assert roles[0] == ("system", "You are Claude Code.")
        assert roles[-3:] == [("tool", None), ("system", MID), ("user", None)]
    elif name == "responses":  # instructions first, the mid-conversation note as a system item in place
        items = body["input"]
        kinds = [i.get("type", "message") if i.get("type") != "message" else i["role"] for i in items]
        assert kinds[-3:] == ["function_call_output", "system", "user"] or kinds[-3:] == [
            "function_call_output", "developer", "user"]  # fmt: skip
        assert MID in json.dumps(items[-2])
    else:  # Gemini has one systemInstruction: both texts, in order
        assert sent.system is not None
        assert sent.system.index("You are Claude Code.") < sent.system.index(MID)
    assert [h[0] for h in sent.history] == ["call", "result"]


#: OpenAI Chat routes for a Claude model: two that take ``cache_control`` on content parts,
#: and a self-hosted server that does not (the breakpoints are dropped there).
CACHE_ROUTES = {
    "openrouter": ("openrouter", "/v1", "anthropic/claude-sonnet-4.5"),
    "copilot": ("copilot", "", "claude-sonnet-4.5"),
    "plain": ("openai-compatible", "/v1", "claude-sonnet-4.5"),
}


@pytest.fixture(scope="module")
def cache_routes(matrix_key: str, live_server_session: Any, django_db_blocker: Any, upstream: Any) -> Iterator[str]:
    from proxy.models import Provider
    from tests import factories
    from tests.fakes.matrix_accounts import CopilotUpstream

    with django_db_blocker.unblock():
        for name, (kind, suffix, model) in CACHE_ROUTES.items():
            p = factories.provider(f"cc-{name}", upstream.url + suffix, type=kind,
                                   models=[{"name": f"m-cc-{name}", "upstream": model}])  # fmt: skip
            if kind == "copilot":
                Provider.objects.filter(pk=p.pk).update(auth_type=CopilotUpstream.auth_type)
                for cred in p.credentials.all():
                    cred.api_key = ""
                    for k, v in CopilotUpstream.credential.items():
                        setattr(cred, k, v)
                    cred.save()
        live_server_session.reload()
        yield matrix_key
        Provider.objects.filter(name__startswith="cc-").delete()
        live_server_session.reload()


@pytest.mark.parametrize("pair", ["anthropic->chat"], indirect=True)
@pytest.mark.parametrize("route", list(CACHE_ROUTES))
def test_cache_control_reaches_the_chat_routes_that_carry_it(pair: Pair, cache_routes: str, route: str) -> None:
    pair.script(pair.upstream.reply(Turn(["Done."]), False))
    sdk = pair.client.sdk  # type: ignore[attr-defined]
    got = sdk.messages.create(
        model=f"m-cc-{route}", max_tokens=256, messages=claude_code_messages(),
        system=[{"type": "text", "text": "You are Claude Code.", "cache_control": CACHE}],
        tools=[{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
                "cache_control": CACHE}],
        extra_headers={**pair.client.headers, "anthropic-beta": BETAS},
    )  # fmt: skip
    assert got.content[0].text == "Done."
    body = pair.fake.requests[0].body
    marked = [(m["role"], part["type"]) for m in body["messages"] if isinstance(m["content"], list)
              for part in m["content"] if part.get("cache_control") == CACHE]  # fmt: skip
    if route == "plain":
        assert marked == [] and "cache_control" not in json.dumps(body)  # dropped: docs/providers.md
        return
    # The system prompt, the image and the tool result keep their breakpoints, on their own parts.
    assert marked == [("system", "text"), ("user", "image_url"), ("tool", "text")], body["messages"]
    tool = next(m for m in body["messages"] if m["role"] == "tool")
    assert tool["content"] == [{"type": "text", "text": "a.txt", "cache_control": CACHE}]
    assert "cache_control" not in json.dumps(body["tools"])  # OpenAI Chat tools have no place for it
