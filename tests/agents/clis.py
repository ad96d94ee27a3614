"""The real agent CLIs as the suite runs them: where they are installed, how each is pointed
at the gateway, and how each is run non-interactively with its telemetry and update checks off.

The CLIs come from ``install.sh`` (a cache folder outside the clone, named by the lock's
hash). ``LLMPROXY_AGENTS_BIN`` points the tests at another install (``make agents-latest``).
Each run gets its own HOME (and CODEX_HOME), so nothing a CLI writes leaks between tests or
into the developer's own configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
PROMPT = "Run the shell command `{command}` and tell me exactly what it printed."


def bin_dir() -> Path:
    """Where the CLIs' executables are: the override, or the pinned install's cache folder."""
    if os.environ.get("LLMPROXY_AGENTS_BIN"):
        return Path(os.environ["LLMPROXY_AGENTS_BIN"])
    lock = (HERE / "package.json").read_bytes() + (HERE / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("LLMPROXY_AGENTS_CACHE") or Path.home() / ".cache" / "llmproxy-agents")
    return cache / hashlib.sha256(lock).hexdigest()[:16] / "node_modules" / ".bin"


def pinned() -> dict[str, str]:
    """npm package -> the exact version package.json pins."""
    deps: dict[str, str] = json.loads((HERE / "package.json").read_text())["dependencies"]
    return deps


def installed_version(package: str) -> str | None:
    """The version of ``package`` in the install the tests use (None: not installed)."""
    manifest = bin_dir().parent / package / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text())["version"])


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


class Cli:
    name = ""
    package = ""
    executable = ""
    #: The public model name the CLI is run with: one of its own, as users leave it.
    model_name = ""
    #: The upstream model names the CLI asks for besides the one it is given (side calls).
    extra_models: tuple[str, ...] = ()

    def __init__(self, home: Path, url: str, key: str, model: str) -> None:
        self.home, self.url, self.key, self.model = home, url, key, model
        self.work = home / "work"
        self.work.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        """A clean environment: no proxy, no developer configuration, no CI-provided keys."""
        keep = ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR", "SYSTEMROOT")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env["PATH"] = f"{bin_dir()}:{env.get('PATH', '/usr/bin:/bin')}"
        env.update(HOME=str(self.home), NO_COLOR="1", NO_PROXY="127.0.0.1,localhost", CI="true")
        return env

    def argv(self, prompt: str) -> list[str]:
        raise NotImplementedError

    def setup(self) -> None:
        """Write the CLI's own configuration files under HOME."""

    def run(self, prompt: str, timeout: float = 100) -> Run:
        self.setup()
        exe = bin_dir() / self.executable
        argv = [str(exe), *self.argv(prompt)]
        p = subprocess.run(argv, cwd=self.work, env=self.env(), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, check=False)  # fmt: skip
        return Run(p.returncode, p.stdout, p.stderr)


class ClaudeCode(Cli):
    name, package, executable = "claude-code", "@anthropic-ai/claude-code", "claude"
    model_name = "claude-sonnet-4-6"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            ANTHROPIC_BASE_URL=self.url, ANTHROPIC_API_KEY=self.key,
            # Every model role Claude Code uses goes to the one public model under test.
            ANTHROPIC_MODEL=self.model, ANTHROPIC_SMALL_FAST_MODEL=self.model,
            ANTHROPIC_DEFAULT_HAIKU_MODEL=self.model, ANTHROPIC_DEFAULT_SONNET_MODEL=self.model,
            ANTHROPIC_DEFAULT_OPUS_MODEL=self.model, CLAUDE_CODE_SUBAGENT_MODEL=self.model,
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_TELEMETRY="1", DISABLE_ERROR_REPORTING="1",
            DISABLE_AUTOUPDATER="1", DISABLE_BUG_COMMAND="1", DISABLE_COST_WARNINGS="1",
            DISABLE_NON_ESSENTIAL_MODEL_CALLS="1", CLAUDE_CODE_DISABLE_TERMINAL_TITLE="1",
            IS_SANDBOX="1",  # lets --dangerously-skip-permissions run as root (CI containers)
        )  # fmt: skip
        return env

    def argv(self, prompt: str) -> list[str]:
        return ["-p", prompt, "--model", self.model, "--output-format", "text", "--dangerously-skip-permissions"]


class Codex(Cli):
    name, package, executable = "codex", "@openai/codex", "codex"
    model_name = "gpt-5-codex"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(CODEX_HOME=str(self.home / ".codex"), LLMPROXY_API_KEY=self.key)
        return env

    def setup(self) -> None:
        codex = self.home / ".codex"
        codex.mkdir(parents=True, exist_ok=True)
        (codex / "config.toml").write_text(
            f'model = "{self.model}"\n'
            'model_provider = "llmproxy"\n'
            "check_for_update_on_startup = false\n"
            "[analytics]\nenabled = false\n"
            "[feedback]\nenabled = false\n"
            "[model_providers.llmproxy]\n"
            'name = "llmproxy"\n'
            f'base_url = "{self.url}/v1"\n'
            'env_key = "LLMPROXY_API_KEY"\n'
            'wire_api = "responses"\n'
            "request_max_retries = 0\n"
            "stream_max_retries = 0\n"
        )

    def argv(self, prompt: str) -> list[str]:
        return ["exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--color", "never",
                "-m", self.model, prompt]  # fmt: skip


class GeminiCli(Cli):
    name, package, executable = "gemini-cli", "@google/gemini-cli", "gemini"
    model_name = "gemini-2.5-pro"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(GEMINI_API_KEY=self.key, GOOGLE_GEMINI_BASE_URL=self.url, GEMINI_CLI_NO_RELAUNCH="true",
                   GEMINI_CLI_TRUST_WORKSPACE="true")  # fmt: skip
        return env

    def setup(self) -> None:
        settings = {
            "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
            "privacy": {"usageStatisticsEnabled": False},
            "telemetry": {"enabled": False},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        }
        gemini = self.home / ".gemini"
        gemini.mkdir(parents=True, exist_ok=True)
        (gemini / "settings.json").write_text(json.dumps(settings))

    def argv(self, prompt: str) -> list[str]:
        return ["-p", prompt, "-m", self.model, "--approval-mode", "yolo", "--output-format", "text"]


CLIS: dict[str, type[Cli]] = {c.name: c for c in (ClaudeCode, Codex, GeminiCli)}
