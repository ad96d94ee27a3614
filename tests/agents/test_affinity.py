"""Prompt-cache affinity with the real CLIs: a conversation stays on one credential.

The provider behind the CLI's model has two credentials, so round-robin alone sends a
conversation's second turn to the other one (and the upstream's prompt cache, kept per
account, misses). With the default affinity every turn of the CLI's conversation (the
tool call and the answer) reaches the upstream with the same key: Claude Code by its
session id, Codex by its ``session-id`` header and ``prompt_cache_key``, Gemini CLI (which
names no session) by the fingerprint of its conversation's start. The control cells turn
affinity off and see the turns split, so the test can tell the two apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.agents.cells import run_cell
from tests.agents.clis import CLIS
from tests.fakes import FakeUpstream
from tests.fakes.agent import Agent

#: Dialects whose provider type has a prompt cache (Anthropic, OpenAI Responses, Gemini).
CACHED = ("anthropic", "responses", "gemini")
CELLS = [f"{c}->{d}" for c in CLIS for d in CACHED]
AUTH_HEADERS = ("x-api-key", "authorization", "x-goog-api-key")


def turns_by_credential(fake: FakeUpstream, agent: Agent) -> list[str]:
    """The upstream key each of the conversation's turns (tool call, answer) was sent with."""
    assert len(agent.log) == len(fake.requests), (agent.log, [r.path for r in fake.requests])
    out = []
    for rec, (_, what) in zip(fake.requests, agent.log, strict=True):
        if what.startswith("call ") or what == "answer":
            out.append(next(rec.headers[h] for h in AUTH_HEADERS if rec.headers.get(h)))
    return out


def run_cli(cell: str, live: Any, fake: FakeUpstream, key: str, tmp_path: Path) -> tuple[Agent, list[str], str]:
    agent, run = run_cell(cell, live, fake, key, tmp_path / "home", second_key="sk-upstream-second")
    story = f"exit {run.code}\nstdout: {run.stdout[-1500:]}\nstderr: {run.stderr[-2000:]}\nupstream: {agent.log}"
    assert agent.errors == [] and run.code == 0 and agent.marker in run.stdout, story
    return agent, turns_by_credential(fake, agent), story


@pytest.mark.single_pass
@pytest.mark.timeout(150)
@pytest.mark.parametrize("cell", CELLS)
def test_the_cli_conversation_stays_on_one_credential(
    cell: str, live: Any, fake: FakeUpstream, key: str, tmp_path: Path, agent_clis: None
) -> None:
    _, keys, story = run_cli(cell, live, fake, key, tmp_path)
    assert len(keys) >= 2, story  # the tool call and the answer
    assert len(set(keys)) == 1, f"turns went to {keys}\n{story}"


@pytest.mark.single_pass
@pytest.mark.timeout(150)
@pytest.mark.parametrize("cli", list(CLIS))
def test_without_affinity_the_turns_split_over_the_credentials(
    cli: str, live: Any, fake: FakeUpstream, key: str, tmp_path: Path, agent_clis: None, monkeypatch: Any
) -> None:
    monkeypatch.setitem(settings.LLMPROXY, "ROUTING", {"session_affinity_ttl": 0})
    _, keys, story = run_cli(f"{cli}->anthropic", live, fake, key, tmp_path)
    assert len(set(keys)) == 2, f"turns went to {keys}\n{story}"
