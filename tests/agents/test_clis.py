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
from pathlib import Path
from typing import Any

import pytest

from proxy.models import UsageRecord
from tests.agents.cells import run_cell
from tests.agents.clis import CLIS
from tests.fakes import FakeUpstream

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


@pytest.mark.single_pass
@pytest.mark.timeout(150)
@pytest.mark.parametrize("cell", CELLS)
def test_the_cli_runs_its_shell_tool_through_the_gateway(
    cell: str, live: Any, fake: FakeUpstream, key: str, tmp_path: Path, agent_clis: None
) -> None:
    agent, run = run_cell(cell, live, fake, key, tmp_path / "home")
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
