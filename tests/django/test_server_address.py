"""Where serve and bootstrap say the server listens, from the environment when there is no config file."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from proxy.configsync.config_file import server_address


@pytest.fixture(autouse=True)
def _no_config_file(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings.LLMPROXY = {**settings.LLMPROXY, "CONFIG": str(tmp_path / "absent.yaml")}
    for name in ("LLMPROXY_SERVER_HOST", "LLMPROXY_SERVER_PORT", "CLI_PROXY_SERVER_HOST", "CLI_PROXY_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_it_takes_the_port_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPROXY_SERVER_PORT", "22001")
    assert server_address() == ("127.0.0.1", 22001)


def test_it_names_a_bad_port_and_keeps_the_defaults(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLMPROXY_SERVER_PORT", "http")
    with caplog.at_level(logging.ERROR, logger="llmproxy.serve"):
        assert server_address() == ("127.0.0.1", 8000)
    assert "server.port: expected a whole number" in caplog.text
    assert "LLMPROXY_SERVER_PORT" in caplog.text


def test_other_sections_overrides_do_not_matter_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMPROXY_ROUTING_MAX_ATTEMPTS", "many")
    monkeypatch.setenv("LLMPROXY_SERVER_HOST", "0.0.0.0")
    assert server_address() == ("0.0.0.0", 8000)


def test_serve_refuses_several_workers_without_redis(settings: Any) -> None:
    """Section 10/13: without a shared store each worker would keep its own limits, so a 60 RPM
    key would get 60 per worker; refused at start with the reason and the way out."""
    from django.core.management import CommandError, call_command

    settings.REDIS_URL = None
    with pytest.raises(CommandError) as info:
        call_command("serve", "--workers", "2", "--no-jobs", "--no-ingest", "--port", "9301")
    text = str(info.value)
    assert text.startswith("--workers 2 needs REDIS_URL") and "once per process" in text and "--workers 1" in text
