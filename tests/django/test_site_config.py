"""The snapshot's config sections come from one parse of ``LLMPROXY_CONFIG`` per build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmproxy.netguard import ImageSettings
from llmproxy.runtime import ResponsesSettings
from llmproxy.throttle import ClientSettings
from proxy.serving import site_config, snapshot

pytestmark = pytest.mark.django_db


def test_it_parses_the_file_once_per_build(site_config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site_config_file.write_text("clients: {max_key_failures: 7}\n")
    calls: list[Any] = []
    real = site_config.load

    def counting(path: Any) -> Any:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(site_config, "load", counting)
    runtime = snapshot.build_runtime(version=1)
    assert calls == [str(site_config_file)]
    assert runtime.clients.max_key_failures == 7


def test_it_keeps_every_section_on_its_fallback_when_the_file_is_bad(site_config_file: Path) -> None:
    site_config_file.write_text("clients: [not, a, mapping]\n")
    site = site_config.read_site_config()
    assert site.config is None and site.error is not None
    assert site_config.images_settings(site) == ImageSettings()
    assert site_config.responses_settings(site) == ResponsesSettings()
    assert site_config.clients_settings(site) == ClientSettings()
