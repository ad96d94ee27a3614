"""docs/conformance.md's generator: every pair's cell lands in its client's table, account routes too."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tests.conformance import ACCOUNT_UPSTREAMS, COLUMNS, parse, render
from tests.fakes.matrix_accounts import ACCOUNT_UPSTREAMS as FAKE_ACCOUNTS

JUNIT = """<testsuites><testsuite>
<testcase classname="tests.contract.test_matrix" name="test_it_answers_text[stream-chat->claude-oauth]"/>
<testcase classname="tests.contract.test_matrix" name="test_it_answers_text[whole-gemini->code-assist]"/>
<testcase classname="tests.contract.test_matrix" name="test_it_answers_text[anthropic->kiro]"><failure/></testcase>
<testcase classname="tests.contract.test_matrix" name="test_it_answers_text[chat->copilot]"/>
<testcase classname="tests.contract.test_matrix" name="test_it_answers_text[chat->gemini]"/>
<testcase classname="tests.agents.test_clis" name="test_the_cli_runs_its_shell_tool[claude-code->claude-oauth]"/>
<testcase classname="tests.contract.test_agent_requests" name="test_cache_control[copilot-anthropic->chat]"/>
</testsuite></testsuites>"""


def test_account_routes_are_columns_and_their_names_are_not_split() -> None:
    assert set(ACCOUNT_UPSTREAMS) == set(FAKE_ACCOUNTS)  # every account route of the matrix has a column
    cases = parse(ET.fromstring(JUNIT))
    got = {(c.client, c.upstream, c.variant, c.outcome) for c in cases}
    assert ("chat", "claude-oauth", "stream", "pass") in got
    assert ("gemini", "code-assist", "whole", "pass") in got
    assert ("anthropic", "kiro", "", "fail") in got
    assert ("claude-code", "claude-oauth", "", "pass") in got
    assert ("anthropic", "chat", "copilot", "pass") in got  # a variant that happens to be a route's name
    assert all(c.upstream in COLUMNS for c in cases)


def test_the_page_shows_account_cells_in_the_clients_tables() -> None:
    page = render(parse(ET.fromstring(JUNIT)))
    header = "| scenario | " + " | ".join(COLUMNS) + " |"
    assert header in page and "## Other contract tests" not in page
    row = next(line for line in page.splitlines() if line.startswith("| answers text (stream) |"))
    assert row.split(" | ")[1 + list(COLUMNS).index("claude-oauth")] == "pass"
    assert "| the cli runs its shell tool | - | - | - | - | - | pass | - | - |" in page
