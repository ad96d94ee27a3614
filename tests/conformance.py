"""Publish what the contract tests prove: ``python -m tests.conformance`` (``make conformance``).

Runs the client-against-upstream tests (tests/contract: the official SDKs; tests/agents: the
real agent CLIs) and writes docs/conformance.md: for every client, with its version, a table
of scenario x upstream (each dialect, then each provider-account route), each cell pass or
fail as this run found it. Nothing in the
page is written by hand. ``run`` and ``cells`` are shared with ``tests.agents.latest``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from tests.agents.clis import CLIS, installed_version

ROOT = Path(__file__).resolve().parent.parent
UPSTREAMS = {
    "chat": "OpenAI-compatible Chat Completions",
    "responses": "OpenAI Responses",
    "anthropic": "Anthropic Messages",
    "gemini": "Gemini",
}
#: The provider-account routes (tests/fakes/matrix_accounts.py), each a column of its own.
ACCOUNT_UPSTREAMS = {
    "copilot": "GitHub Copilot account (Chat Completions)",
    "claude-oauth": "Claude account, OAuth (Anthropic Messages)",
    "code-assist": "Google account, Gemini Code Assist",
    "kiro": "Kiro account (CodeWhisperer event stream)",
}
COLUMNS = {**UPSTREAMS, **ACCOUNT_UPSTREAMS}
SDK_CLIENTS = {
    "chat": ("openai", "openai SDK, Chat Completions"),
    "responses": ("openai", "openai SDK, Responses"),
    "anthropic": ("anthropic", "anthropic SDK, Messages"),
    "gemini": ("google-genai", "google-genai SDK"),
}


@dataclass
class Case:
    file: str
    test: str
    variant: str  # the test's other parameters, e.g. "stream"
    client: str
    upstream: str
    outcome: str  # pass | fail | skip


def run(paths: list[str], env: dict[str, str] | None = None) -> tuple[int, list[Case]]:
    """Run pytest on ``paths`` and read back every test's outcome from its JUnit report."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        argv = [sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", *paths]
        code = subprocess.call(argv, cwd=ROOT, env={**os.environ, **(env or {})})
        if not report.exists():
            return code, []
        return code, parse(ET.parse(report).getroot())


def parse(root: ET.Element) -> list[Case]:
    known = sorted([*SDK_CLIENTS, *CLIS], key=len, reverse=True)
    out: list[Case] = []
    for tc in root.iter("testcase"):
        test, _, params = tc.get("name", "").partition("[")
        params = params.removesuffix("]")
        client, upstream, variant = "", "", params
        # A pair is "<client>-><upstream>" (e.g. "whole-claude-code->gemini"): the client is
        # the known name the text before the arrow ends with, the rest is the variant.
        # The upstream is the known column name the text after it starts with ("claude-oauth",
        # not "claude"); what follows it is more variant.
        head, arrow, tail = params.partition("->")
        name = next((k for k in known if head == k or head.endswith("-" + k)), None)
        column = next((u for u in _BY_LENGTH if tail == u or tail.startswith(u + "-")), None)
        if arrow and name is not None:
            upstream = column or tail.partition("-")[0]
            rest = tail.removeprefix(upstream).lstrip("-")
            client, variant = name, "-".join(x for x in (head.removesuffix(name).rstrip("-"), rest) if x)
        kinds = {child.tag for child in tc}
        outcome = "fail" if kinds & {"failure", "error"} else "skip" if "skipped" in kinds else "pass"
        out.append(Case(tc.get("classname", ""), test, variant, client, upstream, outcome))
    return out


_BY_LENGTH = sorted(COLUMNS, key=len, reverse=True)


def _scenario(case: Case) -> str:
    words = case.test.removeprefix("test_").removeprefix("it_").replace("_", " ")
    return f"{words} ({case.variant})" if case.variant else words


def clients() -> dict[str, str]:
    """Client id -> its name and version, as this run used them."""
    out = {}
    for cid, (dist, label) in SDK_CLIENTS.items():
        out[cid] = f"{label} {metadata.version(dist)}"
    for cid, cli in CLIS.items():
        out[cid] = f"{cli.package} {installed_version(cli.package) or '(not installed)'}"
    return out


def render(cases: list[Case]) -> str:
    names = clients()
    by_client: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    others: list[Case] = []
    for c in cases:
        if c.client in names and c.upstream in COLUMNS:
            by_client[c.client][_scenario(c)][c.upstream] = c.outcome
        else:
            others.append(c)
    total = len(cases)
    passed = sum(c.outcome == "pass" for c in cases)
    lines = [
        "# Conformance",
        "",
        "Written by `make conformance` from one run of the contract tests (tests/contract: the",
        "official SDKs; tests/agents: the real agent CLIs), each driven through the live gateway to",
        "fake upstreams that speak each provider's wire protocol. Do not edit by hand.",
        "",
        f"Run at {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}: {passed} of {total} tests pass.",
        "",
        "Upstream dialects: " + "; ".join(f"`{k}` = {v}" for k, v in UPSTREAMS.items()) + ".",
        "Provider-account routes: " + "; ".join(f"`{k}` = {v}" for k, v in ACCOUNT_UPSTREAMS.items()) + ".",
        "",
    ]
    for cid, label in names.items():
        rows = by_client.get(cid)
        if not rows:
            continue
        lines += [f"## {label}", "", "| scenario | " + " | ".join(COLUMNS) + " |",
                  "| --- |" + " --- |" * len(COLUMNS)]  # fmt: skip
        for scenario in sorted(rows):
            cells = [rows[scenario].get(u, "-") for u in COLUMNS]
            lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
        lines.append("")
    if others:
        lines += ["## Other contract tests", "", "| test | result |", "| --- | --- |"]
        for c in others:
            lines.append(f"| {c.file.rsplit('.', 1)[-1]}: {_scenario(c)} | {c.outcome} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    code, cases = run(["tests/contract", "tests/agents"])
    if not cases:
        print("no test results: pytest did not run", file=sys.stderr)
        return code or 1
    out = ROOT / "docs" / "conformance.md"
    out.write_text(render(cases))
    print(f"wrote {out.relative_to(ROOT)}: {sum(c.outcome == 'pass' for c in cases)} of {len(cases)} pass")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
