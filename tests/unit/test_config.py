"""config.yaml: validation lists every error with its path, interpolation, env overrides, dump."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmproxy import config
from llmproxy.config import ConfigError, ConfigIssue
from llmproxy.runtime import RoutingSettings

GOOD = """
server: {host: 127.0.0.1, port: 8000}
providers:
  anthropic-main:
    type: claude
    enabled: true
    base_url: https://api.anthropic.com
    auth_type: api_key
    priority: 10
    weight: 1
    cooldown: 60s
    rate_limit: {rpm: 600, tpm: 2000000}
    credentials:
      - {name: key-1, api_key: "${ANTHROPIC_API_KEY}", weight: 1}
      - {name: me, file: claude-me.json}
    models:
      - name: claude-sonnet-4
        upstream: claude-sonnet-4-20250514
        input_price: 3.0
        output_price: 15.0
        cached_input_price: 0.3
  local:
    type: openai-compatible
    base_url: http://127.0.0.1:11434/v1
    cooldown: 5m
    headers: {X-Team: research}
    options: {timeout: 30}
    credentials: [{api_key: none}]
    models: [llama3, {name: qwen, aliases: [qwen-latest]}]
auth: {dir: auths}
management: {allow_remote: false}
logging: {level: info, request_log: false}
"""
ENV = {"ANTHROPIC_API_KEY": "sk-ant-test"}


def issues_of(text: str, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        config.loads(textwrap.dedent(text), env=ENV if env is None else env)
    return info.value.issues


def test_config_loads_the_documented_example() -> None:
    cfg = config.loads(GOOD, env=ENV)
    p = cfg.providers["anthropic-main"]
    assert (p.type, p.priority, p.cooldown, p.rate_limit.rpm, p.rate_limit.tpm) == ("claude", 10, 60.0, 600, 2000000)
    assert p.credentials[0].api_key == "sk-ant-test"
    assert (p.credentials[1].name, p.credentials[1].file, p.credentials[1].api_key) == ("me", "claude-me.json", None)
    m = p.models[0]
    assert (m.name, m.upstream_name, m.input_price, m.output_price, m.cached_input_price) == (
        "claude-sonnet-4", "claude-sonnet-4-20250514", 3.0, 15.0, 0.3,
    )  # fmt: skip
    local = cfg.providers["local"]
    assert local.cooldown == 300.0
    assert local.credentials[0].name == "key-1"
    assert [m.name for m in local.models] == ["llama3", "qwen"]
    assert local.models[1].public_names == ("qwen", "qwen-latest")
    assert local.models[0].upstream_name == "llama3"
    assert dict(local.headers) == {"X-Team": "research"}
    assert cfg.server.port == 8000 and cfg.auth.dir == "auths" and cfg.logging.level == "info"
    assert cfg.content_hash == config.content_hash(GOOD)


def test_config_empty_file_is_all_defaults() -> None:
    cfg = config.loads("", env={})
    assert cfg.providers == {} and cfg.server.port == 8000 and cfg.routing.strategy == "round-robin"


BAD_CASES = [
    ("typo'd top-level key", "providrs: {}\n", [("providrs", "did you mean 'providers'")]),
    ("typo'd provider key", "providers:\n  a: {type: openai, weigth: 2}\n", [("providers.a.weigth", "did you mean 'weight'")]),
    ("typo'd model key", "providers:\n  a:\n    type: openai\n    models: [{name: m, input_prize: 1}]\n",
     [("providers.a.models[0].input_prize", "did you mean 'input_price'")]),
    ("wrong type", "server: {port: eighty}\n", [("server.port", "expected a whole number")]),
    ("wrong type, list", "providers:\n  a: {type: openai, priority: [1]}\n", [("providers.a.priority", "whole number")]),
    ("wrong type, bool", "management: {allow_remote: maybe}\n", [("management.allow_remote", "true or false")]),
    ("not a mapping", "providers: [a, b]\n", [("providers", "expected a mapping")]),
    ("unknown provider type", "providers:\n  a: {type: claud}\n", [("providers.a.type", "did you mean 'claude'")]),
    ("missing type", "providers:\n  a: {enabled: true}\n", [("providers.a.type", "is required")]),
    ("duplicate model", "providers:\n  a:\n    type: openai\n    models: [{name: m}, {name: m}]\n",
     [("providers.a.models[1]", "'m' is listed twice")]),
    ("duplicate via alias", "providers:\n  a:\n    type: openai\n    models: [{name: m}, {name: n, aliases: [m]}]\n",
     [("providers.a.models[1].aliases", "'m' is listed twice")]),
    ("duplicate credential", "providers:\n  a:\n    type: openai\n    credentials: [{name: k, api_key: x}, {name: k, api_key: y}]\n",
     [("providers.a.credentials[1].name", "listed twice")]),
    ("credential without a secret", "providers:\n  a:\n    type: openai\n    credentials: [{name: k}]\n",
     [("providers.a.credentials[0]", "needs an api_key, a file or tokens")]),
    ("unset variable", "providers:\n  a:\n    type: openai\n    credentials: [{api_key: '${NOT_SET_ANYWHERE}'}]\n",
     [("providers.a.credentials[0].api_key", "environment variable NOT_SET_ANYWHERE is not set")]),
    ("negative price", "providers:\n  a:\n    type: openai\n    models: [{name: m, output_price: -0.5}]\n",
     [("providers.a.models[0].output_price", "must not be negative")]),
    ("negative weight", "providers:\n  a: {type: openai, weight: -1}\n", [("providers.a.weight", "must not be negative")]),
    ("negative cooldown", "providers:\n  a: {type: openai, cooldown: -5}\n", [("providers.a.cooldown", "must not be negative")]),
    ("bad duration", "providers:\n  a: {type: openai, cooldown: 5 minutes}\n", [("providers.a.cooldown", "duration")]),
    ("bad URL", "providers:\n  a: {type: openai, base_url: 'api.openai.com/v1'}\n", [("providers.a.base_url", "not an http(s) URL")]),
    ("compatible needs a URL", "providers:\n  a: {type: openai-compatible}\n", [("providers.a.base_url", "is required")]),
    ("bad provider name", "providers:\n  'a b': {type: openai}\n", [("providers.a b", "a provider name is")]),
    ("port out of range", "server: {port: 70000}\n", [("server.port", "at most 65535")]),
    ("bad strategy", "routing: {strategy: random}\n", [("routing.strategy", "is not one of")]),
    ("bad log level", "logging: {level: loud}\n", [("logging.level", "is not one of")]),
    ("limits not a mapping", "limits: 5\n", [("limits", "expected a mapping")]),
    ("key given twice", "providers:\n  a: {type: openai}\n  a: {type: gemini}\n", [("line 3", "'a' is given twice")]),
    ("YAML syntax", "providers: {a: [}\n", [("line 1, column 17", "YAML syntax error")]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_config_rejects_a_bad_file_with_path_and_reason(text: str, expected: list[tuple[str, str]]) -> None:
    issues = issues_of(text)
    for path, reason in expected:
        assert any(i.path == path and reason in i.reason for i in issues), (path, reason, issues)
    assert len(issues) == len(expected), issues


def test_config_lists_every_error_of_a_file_at_once() -> None:
    text = """
    server: {host: 127.0.0.1, prot: 8000}
    providers:
      a:
        type: claud
        weigth: 2
        credentials: [{name: k, api_key: "${UNSET_KEY}"}]
        models:
          - {name: m, input_price: -1}
          - {name: m}
      b: {type: openai, priority: high}
    routing: {max_attempts: 0}
    """
    err = None
    try:
        config.loads(textwrap.dedent(text), source="bad.yaml", env={})
    except ConfigError as exc:
        err = exc
    assert err is not None
    assert sorted(i.path for i in err.issues) == sorted([
        "server.prot", "providers.a.type", "providers.a.weigth", "providers.a.credentials[0].api_key",
        "providers.a.models[0].input_price", "providers.a.models[1]", "providers.b.priority", "routing.max_attempts",
    ])  # fmt: skip
    message = str(err)
    assert message.startswith("bad.yaml: 8 errors in config")
    for line in err.errors:
        assert line in message
    assert "server.prot: unknown key (did you mean 'port'?)" in message


def test_config_interpolates_variables_with_defaults_and_escapes() -> None:
    text = """
    server: {host: "${HOST:-0.0.0.0}", port: "${PORT}"}
    providers:
      a:
        type: openai
        base_url: "https://${API_HOST}/v1"
        headers: {X-Cost: "$$5"}
        credentials: [{api_key: "pre-${KEY}-post"}]
    """
    cfg = config.loads(textwrap.dedent(text), env={"PORT": "9001", "API_HOST": "api.example.com", "KEY": "abc"})
    assert cfg.server.host == "0.0.0.0"
    assert cfg.server.port == 9001  # a whole ${VAR} may stand for a number
    assert cfg.providers["a"].base_url == "https://api.example.com/v1"
    assert cfg.providers["a"].credentials[0].api_key == "pre-abc-post"
    assert cfg.providers["a"].headers["X-Cost"] == "$5"


def test_config_literal_strings_are_not_read_as_numbers() -> None:
    issues = issues_of('server: {port: "9000"}\n', env={})
    assert [i.path for i in issues] == ["server.port"]


def test_config_env_overrides_scalar_keys_and_wins_over_the_file() -> None:
    env = {
        "LLMPROXY_SERVER_PORT": "9100",
        "CLI_PROXY_SERVER_PORT": "9200",  # LLMPROXY_ wins
        "CLI_PROXY_SERVER_HOST": "0.0.0.0",
        "LLMPROXY_LOGGING_REQUEST_LOG": "yes",
        "LLMPROXY_MANAGEMENT_ALLOW_REMOTE": "true",
        "LLMPROXY_ROUTING_SESSION_AFFINITY_TTL": "5m",
        "LLMPROXY_ROUTING_MAX_ATTEMPTS": "5",
        "LLMPROXY_AUTH_DIR": "/srv/auths",
    }
    cfg = config.loads("server: {port: 8000}\nlogging: {level: debug}\n", env=env)
    assert (cfg.server.host, cfg.server.port) == ("0.0.0.0", 9100)
    assert cfg.logging.request_log is True and cfg.logging.level == "debug"
    assert cfg.management.allow_remote is True
    assert (cfg.routing.session_affinity_ttl, cfg.routing.max_attempts) == (300.0, 5)
    assert cfg.auth_dir() == Path("/srv/auths")


def test_config_bad_env_override_names_the_variable() -> None:
    issues = issues_of("", env={"LLMPROXY_SERVER_PORT": "http"})
    assert len(issues) == 1
    assert issues[0].path == "server.port" and "(from LLMPROXY_SERVER_PORT)" in issues[0].reason


def test_config_dump_round_trips_with_secrets() -> None:
    cfg = config.loads(GOOD, env=ENV)
    text = config.dump(cfg, with_secrets=True)
    assert "sk-ant-test" in text
    assert config.loads(text, env={}) == cfg


def test_config_dump_elides_secrets_by_default() -> None:
    cfg = config.loads(GOOD, env=ENV)
    text = config.dump(cfg)
    assert "sk-ant-test" not in text
    assert "api_key: <redacted>" in text
    again = config.loads(text, env={})
    assert again.providers["anthropic-main"].credentials[0].api_key == config.REDACTED
    assert "cooldown: 1m" in text and "cooldown: 5m" in text


def test_config_dump_without_defaults_keeps_only_changed_sections() -> None:
    cfg = config.loads("server: {port: 9000}\nproviders: {}\n", env={})
    text = config.dump(cfg, include_defaults=False)
    assert "server:" in text and "logging:" not in text and "routing:" not in text


def test_config_load_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path / "nope.yaml")
    assert info.value.errors == ["file not found"]


def _write_runtime_config(tmp_path: Path, token: dict[str, object] | None) -> Path:
    (tmp_path / "auths").mkdir()
    if token is not None:
        (tmp_path / "auths" / "openai-me.json").write_text(json.dumps(token))
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent("""
        providers:
          up:
            type: openai-compatible
            base_url: http://127.0.0.1:9/v1
            priority: 5
            credentials:
              - {name: k, api_key: sk-one, weight: 2}
              - {name: me, file: openai-me.json}
              - {name: spare, api_key: sk-spare, enabled: false}
            models:
              - {name: gpt-test, upstream: gpt-up, input_price: 3, output_price: 15, aliases: [gpt-alias]}
              - {name: free}
          disabled: {type: openai, enabled: false, models: [gpt-test]}
    """))  # fmt: skip
    return path


def test_config_load_runtime_builds_routes_and_reads_token_files(tmp_path: Path) -> None:
    path = _write_runtime_config(tmp_path, {"access_token": "tok-1", "refresh_token": "ref-1", "expires_at": 2e9})
    rt = config.load_runtime(path)
    assert rt.require_keys is False
    assert rt.models() == ["free", "gpt-alias", "gpt-test"]
    (route,) = rt.routes["gpt-test"]
    assert (route.upstream_model, route.provider.priority, route.price.input if route.price else None) == (
        "gpt-up",
        5,
        3.0,
    )
    assert rt.routes["gpt-alias"][0].upstream_model == "gpt-up"
    assert rt.routes["free"][0].price is None
    creds = {c.name: c for c in route.credentials}
    assert set(creds) == {"k", "me"}
    assert creds["k"].weight == 2 and creds["k"].secret == "sk-one"
    assert (creds["me"].access_token, creds["me"].refresh_token, creds["me"].expires_at) == ("tok-1", "ref-1", 2e9)


def test_config_load_runtime_reports_a_missing_token_file(tmp_path: Path) -> None:
    path = _write_runtime_config(tmp_path, None)
    with pytest.raises(ConfigError) as info:
        config.load_runtime(path)
    (issue,) = info.value.issues
    assert issue.path == "providers.up.credentials[1].file" and "does not exist" in issue.reason


def test_config_token_file_accepts_iso_expiry(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"api_key": "k", "expires_at": "2030-01-01T00:00:00Z", "email": "x@y"}))
    tokens = config.read_token_file(path)
    assert tokens.api_key == "k" and tokens.expires_at == 1893456000.0
    path.write_text("[]")
    with pytest.raises(ValueError, match="JSON object"):
        config.read_token_file(path)


def test_config_and_watcher_import_without_django() -> None:
    code = "import sys, llmproxy.config, llmproxy.watcher; print(any(m.split('.')[0] == 'django' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_routing_is_the_engine_routing_settings(tmp_path: Path) -> None:
    cfg = config.loads(
        "routing: {strategy: fill-first, retry_budget: 10s, backoff_max: 500ms, max_attempts: 2}\n", env={}
    )
    assert (cfg.routing.strategy, cfg.routing.retry_budget, cfg.routing.backoff_max) == ("fill-first", 10.0, 0.5)
    path = tmp_path / "config.yaml"
    path.write_text(
        "routing: {max_attempts: 2}\nproviders:\n  a: {type: openai, credentials: [{api_key: k}], models: [m]}\n"
    )
    assert config.load_runtime(path, env={}).routing.max_attempts == 2
    assert config.loads(config.dump(cfg), env={}) == cfg


def test_config_usage_section_reads_fsync_and_the_journal_quota() -> None:
    cfg = config.loads("usage: {fsync: true, journal_max_mb: 64}")
    assert cfg.usage == config.UsageSettings(fsync=True, journal_max_mb=64)
    assert config.loads("{}", env={"LLMPROXY_USAGE_FSYNC": "true"}).usage.fsync is True
    with pytest.raises(ConfigError) as exc:
        config.loads("usage: {fsync: maybe, journal_max_mb: 0}")
    assert {i.path for i in exc.value.issues} == {"usage.fsync", "usage.journal_max_mb"}


def test_session_affinity_is_auto_unless_set() -> None:
    assert config.loads("server: {port: 8000}\n").routing.session_affinity_ttl is None
    assert config.loads("routing: {session_affinity_ttl: auto}\n").routing.session_affinity_ttl is None
    assert config.loads("routing: {session_affinity_ttl: 0}\n").routing.session_affinity_ttl == 0
    assert RoutingSettings.from_mapping({"session_affinity_ttl": "auto"}).session_affinity_ttl is None
