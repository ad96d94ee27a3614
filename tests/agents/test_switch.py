"""Claude Code's conversation moved from a Claude route to a Gemini route mid-way, and back.

Three runs of the real CLI in one HOME: the first on a model routed to an Anthropic
upstream runs its shell tool; ``--continue`` then resumes that conversation on a model
routed to a Gemini upstream, and once more on the Claude route. Each upstream gets the
whole history in its own dialect (the tool call and its result from the other provider's
turns), no request breaks a rule the real API enforces, no signature crosses providers,
and every run ends without an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.actions import create_api_key
from accounts.models import User
from proxy.models import Provider, UsageRecord
from tests import factories
from tests.agents.clis import PROMPT, ClaudeCode
from tests.fakes import FakeUpstream
from tests.fakes.agent import Agent
from tests.fakes.matrix import SIGNATURE, UPSTREAMS

MODELS = {"anthropic": "claude-sonnet-4-6", "gemini": "claude-on-gemini"}


class Continued(ClaudeCode):
    """Claude Code resuming the most recent conversation of its working directory."""

    def argv(self, prompt: str) -> list[str]:
        return ["--continue", *super().argv(prompt)]


@pytest.fixture
def key(live: Any) -> Iterator[str]:
    user = User.objects.create(username="agent")
    _, secret = create_api_key(user)
    yield secret


@pytest.mark.single_pass
@pytest.mark.timeout(300)
def test_claude_code_moves_from_claude_to_gemini_and_back(
    live: Any, fake: FakeUpstream, key: str, tmp_path: Path, agent_clis: None
) -> None:
    for dialect, model in MODELS.items():
        up = UPSTREAMS[dialect]
        p = factories.provider(f"switch-{dialect}", fake.url + up.suffix, type=up.type,
                               models=[{"name": model, "upstream": up.model}])  # fmt: skip
        Provider.objects.filter(pk=p.pk).update(options=up.options)
    live.reload()
    home = tmp_path / "home"
    stories, seen = [], []
    for i, dialect in enumerate(("anthropic", "gemini", "anthropic")):
        agent = Agent(UPSTREAMS[dialect])
        fake.reset()
        fake.default("*", agent)
        cli = (ClaudeCode if i == 0 else Continued)(home, live.url, key, MODELS[dialect])
        run = cli.run(PROMPT.format(command=agent.command) if i == 0 else "Go on: what did the command print?")
        story = f"run {i} ({dialect}): exit {run.code}\nstdout: {run.stdout[-1500:]}\nstderr: {run.stderr[-2000:]}"
        stories.append(f"{story}\nupstream: {agent.log}")
        assert agent.errors == [] and run.code == 0, "\n".join(stories)
        if i == 0:
            assert agent.marker in run.stdout and agent.results, "\n".join(stories)
        assert len(agent.log) == len(fake.requests), "\n".join(stories)
        turns = [UPSTREAMS[dialect].sent(r) for r, (_, what) in zip(fake.requests, agent.log, strict=True)
                 if what != "count"]  # fmt: skip
        main = max(turns, key=lambda s: len(s.history))  # the conversation's own turn (not a side call)
        seen.append([h[0] for h in main.history])
        if dialect == "anthropic":  # no Gemini signature reaches Claude, plain or inside a call id
            sent = json.dumps([r.body for r in fake.requests])
            assert SIGNATURE not in sent and "_ts_" not in sent, "\n".join(stories)
    # Each later run's upstream got the first run's tool call and its result, in its own dialect.
    assert seen[0][:2] == ["call", "result"] and seen[1][:2] == ["call", "result"], seen
    assert seen[2][:2] == ["call", "result"], seen
    live.flush_usage()
    statuses = set(UsageRecord.objects.values_list("status_code", flat=True))
    assert statuses == {200}, statuses
