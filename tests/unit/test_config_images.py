"""config.yaml ``images:``: the SSRF guard's settings, their env overrides, and the snapshot."""

from __future__ import annotations

import textwrap

import pytest

from llmproxy import config
from llmproxy.config import ConfigError
from llmproxy.netguard import ImageSettings

FILE = """
images:
  allow_private: false
  allow_hosts: [images.internal, "Store.Internal:8080"]
  max_bytes: 5000000
"""


def test_config_images_defaults_are_public_only_and_20_mb() -> None:
    cfg = config.loads("", env={})
    assert cfg.images == ImageSettings(allow_private=False, allow_hosts=(), max_bytes=20_000_000)


def test_config_images_reads_every_key_and_reaches_the_runtime() -> None:
    cfg = config.loads(FILE, env={})
    assert cfg.images == ImageSettings(False, ("images.internal", "store.internal:8080"), 5_000_000)
    assert config.build_runtime(cfg).images == cfg.images
    assert config.loads(config.dump(cfg), env={}) == cfg


def test_config_images_env_overrides_for_test_setups() -> None:
    env = {"LLMPROXY_IMAGES_ALLOW_PRIVATE": "true", "LLMPROXY_IMAGES_ALLOW_HOSTS": "a.internal, b.internal:81",
           "LLMPROXY_IMAGES_MAX_BYTES": "1000"}  # fmt: skip
    cfg = config.loads(FILE, env=env)
    assert cfg.images == ImageSettings(True, ("a.internal", "b.internal:81"), 1000)


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        ("images: {allow_private: sometimes}", "images.allow_private", "true or false"),
        ("images: {max_bytes: 0}", "images.max_bytes", "at least 1"),
        ("images: {allow_hosts: [http://x.internal/]}", "images.allow_hosts[0]", "host name or host:port"),
        ("images: {allow_hosts: [3]}", "images.allow_hosts[0]", "host name or host:port"),
        ("images: {allow_host: [x]}", "images.allow_host", "did you mean 'allow_hosts'"),
    ],
)
def test_config_images_rejects_bad_values(text: str, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.loads(textwrap.dedent(text), env={})
    assert [(i.path, reason in i.reason) for i in info.value.issues] == [(path, True)]
