"""The real coding-agent CLIs finish a tool-using task through the gateway, to every upstream.

Each cell runs one pinned CLI (Claude Code, Codex, Gemini CLI; see package.json here)
non-interactively against the live gateway, with a model routed to a fake upstream of one
dialect that plays a coding agent's model (``tests.fakes.agent``): it asks the CLI to run
its shell tool, then answers with what the tool printed. The cell passes when the CLI's
final output carries the tool's output and the upstream saw that output come back as a
tool result, in its own dialect, with no request breaking a rule the real API enforces.
Set ``LLMPROXY_AGENTS_DUMP`` to a folder to keep what each cell's upstream received.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.actions import create_api_key
from accounts.models import User
from proxy.models import Provider, UsageRecord
from tests import factories
from tests.agents.clis import CLIS, PROMPT, Cli
from tests.fakes import FakeUpstream
from tests.fakes.agent import Agent
from tests.fakes.matrix import UPSTREAMS
from tests.fakes.matrix_accounts import ACCOUNT_UPSTREAMS

#: The upstream dialects a CLI is proven against: OpenAI (Chat Completions, as vLLM or
#: OpenRouter serve it, and OpenAI's own Responses), Anthropic and Gemini.
DIALECTS = ("chat", "responses", "anthropic", "gemini")
#: Account upstreams a CLI is proven against too: Claude Code through Kiro, Copilot and a
#: Claude subscription; Codex through Copilot; Gemini CLI through Code Assist (Google login).
ACCOUNT_CELLS = [
    "claude-code->kiro",
    "claude-code->copilot",
    "claude-code->claude-oauth",
    "codex->copilot",
    "gemini-cli->code-assist",
]
CELLS = [f"{c}->{d}" for c in CLIS for d in DIALECTS] + ACCOUNT_CELLS
EVERY = {**UPSTREAMS, **ACCOUNT_UPSTREAMS}


@pytest.fixture
def key(live: Any) -> Iterator[str]:
    user = User.objects.create(username="agent")
    _, secret = create_api_key(user)
    yield secret


def route(live: Any, fake: FakeUpstream, dialect: str, names: tuple[str, ...]) -> None:
    up = EVERY[dialect]
    models = [{"name": n, "upstream": up.model, "input_price": "1", "output_price": "2"} for n in names]
    p = factories.provider(f"agents-{dialect}", fake.url + up.suffix, type=up.type, models=models)
    Provider.objects.filter(pk=p.pk).update(options=up.options, auth_type=up.auth_type)
    if up.credential:  # an account: its tokens instead of the factory's API key
        for cred in p.credentials.all():
            cred.api_key = ""
            for k, v in up.credential.items():
                setattr(cred, k, v)
            cred.save()
    live.reload()


@pytest.mark.single_pass
@pytest.mark.timeout(150)
@pytest.mark.parametrize("cell", CELLS)
def test_the_cli_runs_its_shell_tool_through_the_gateway(
    cell: str, live: Any, fake: FakeUpstream, key: str, tmp_path: Path, agent_clis: None
) -> None:
    cli_name, dialect = cell.split("->")
    cls = CLIS[cli_name]
    route(live, fake, dialect, (cls.model_name, *cls.extra_models))
    agent = Agent(EVERY[dialect])
    fake.default("*", agent)
    cli: Cli = cls(tmp_path / "home", live.url, key, cls.model_name)
    run = cli.run(PROMPT.format(command=agent.command))
    if os.environ.get("LLMPROXY_AGENTS_DUMP"):  # what the upstream received, to study a CLI release
        dump = [dataclasses.asdict(r) for r in fake.requests]
        Path(os.environ["LLMPROXY_AGENTS_DUMP"], cell.replace("->", "-") + ".json").write_text(
            json.dumps(dump, indent=1)
        )
    story = f"exit {run.code}\nstdout: {run.stdout[-2000:]}\nstderr: {run.stderr[-3000:]}\nupstream: {agent.log}"
    assert agent.errors == [], story
    assert any(what.startswith("call ") for _, what in agent.log), story
    assert agent.results, f"the tool's output never came back to the upstream\n{story}"
    assert run.code == 0, story
    assert agent.marker in run.stdout, story
    live.flush_usage()
    statuses = list(UsageRecord.objects.values_list("status_code", flat=True))
    assert len(statuses) >= 2 and set(statuses) == {200}, statuses  # every call the CLI made succeeded
