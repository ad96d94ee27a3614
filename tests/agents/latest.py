"""``make agents-latest``: the agent-CLI tests against the newest published CLI releases.

Installs the latest ``@anthropic-ai/claude-code``, ``@openai/codex`` and
``@google/gemini-cli`` from npm into a fresh cache folder, runs tests/agents against them
(the same cells as the pinned versions), and reports each CLI's version and which cells
pass, so a new release that breaks through the gateway is seen here before users see it.
Exit status is non-zero when any cell fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict

from tests.agents.clis import CLIS, installed_version, pinned
from tests.conformance import ROOT, run


def main() -> int:
    out = subprocess.run(["bash", "tests/agents/install.sh", "--latest"], cwd=ROOT, check=True,
                         capture_output=True, text=True)  # fmt: skip
    bin_dir = out.stdout.strip().splitlines()[-1]
    os.environ["LLMPROXY_AGENTS_BIN"] = bin_dir
    code, cases = run(["tests/agents"], {"LLMPROXY_AGENTS_BIN": bin_dir, "CI": "true"})
    cells: dict[str, list[str]] = defaultdict(list)
    for c in cases:
        cells[c.client].append(f"{c.upstream} {c.outcome}")
    print(f"\nlatest releases (installed in {bin_dir}):")
    for name, cli in CLIS.items():
        latest, pin = installed_version(cli.package), pinned()[cli.package]
        verdict = "all pass" if cells[name] and all(x.endswith(" pass") for x in cells[name]) else "FAILS"
        print(f"  {cli.package} {latest} (pinned {pin}): {verdict}: {', '.join(cells[name]) or 'not run'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
