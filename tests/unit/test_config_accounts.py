"""config.yaml's account endpoint fields and account token files in the auth dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmproxy.config import ConfigError, build_runtime, dump, loads

YAML = """
providers:
  copilot:
    type: copilot
    auth_type: device_flow
    github_url: http://127.0.0.1:9/gh/
    github_api_url: http://127.0.0.1:9/api
    credentials: [{name: me, file: copilot-me.json}]
    models: [{name: gpt-4.1}]
  kiro:
    type: kiro
    auth_type: device_flow
    region: eu-central-1
    oidc_url: https://oidc.eu-central-1.amazonaws.com
    auth_url: https://prod.eu-central-1.auth.desktop.kiro.dev
  claude-max:
    type: claude
    auth_type: oauth
    oauth_url: https://platform.claude.com
    options: {beta: x}
"""


def test_endpoint_fields_parse_into_options_and_dump_back() -> None:
    cfg = loads(YAML)
    assert cfg.providers["copilot"].options == {"github_url": "http://127.0.0.1:9/gh",
                                                "github_api_url": "http://127.0.0.1:9/api"}  # fmt: skip
    assert cfg.providers["kiro"].options["region"] == "eu-central-1"
    assert cfg.providers["claude-max"].options == {"beta": "x", "oauth_url": "https://platform.claude.com"}
    out = yaml.safe_load(dump(cfg))
    assert out["providers"]["claude-max"]["oauth_url"] == "https://platform.claude.com"
    assert out["providers"]["claude-max"]["options"] == {"beta": "x"}
    assert out["providers"]["kiro"]["region"] == "eu-central-1"
    assert loads(dump(cfg, with_secrets=True)).providers == cfg.providers


def test_endpoint_fields_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        loads("providers:\n  c: {type: copilot, github_api_url: 'ftp://x', region: 'Mars 1'}\n")
    errors = info.value.errors
    assert any(e.startswith("providers.c.github_api_url: ") and "is not an http(s) URL" in e for e in errors)
    assert any(e.startswith("providers.c.region: ") for e in errors)


def test_account_token_files_feed_the_runtime(tmp_path: Path) -> None:
    (tmp_path / "auths").mkdir()
    (tmp_path / "auths" / "copilot-me.json").write_text(json.dumps({"type": "copilot", "github_token": "ghu_abc"}))
    cfg = loads(YAML.split("  kiro:")[0], base_dir=str(tmp_path))
    rt = build_runtime(cfg)
    cred = rt.routes["gpt-4.1"][0].credentials[0]
    assert cred.refresh_token == "ghu_abc"
    assert rt.routes["gpt-4.1"][0].provider.options["auth_type"] == "device_flow"


def test_a_bad_account_token_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    (tmp_path / "auths").mkdir()
    (tmp_path / "auths" / "copilot-me.json").write_text(json.dumps({"type": "copilot", "access_token": "x"}))
    with pytest.raises(ConfigError) as info:
        build_runtime(loads(YAML.split("  kiro:")[0], base_dir=str(tmp_path)))
    assert any("copilot-me.json: github_token: is required" in e for e in info.value.errors)
