"""The seed's Synthesizer through ``Gateway.from_config`` and ``Watcher``, on real temp files.

A reader can copy ``AliasSynthesizer``: it adds a public alias to a model, which is
observable as a model the gateway lists and answers for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from llmproxy import DefaultSynthesizer, Gateway, Synthesizer, Watcher
from llmproxy.config import Config

CONFIG = """\
auth: {dir: auths}
providers:
  d:
    type: demo
    credentials: [{name: offline, api_key: unused}]
    models: [{name: demo-1, input_price: 0, output_price: 0}]
"""
CONFIG2 = CONFIG.replace(
    "models: [{name: demo-1, input_price: 0, output_price: 0}]",
    "models: [{name: demo-1, input_price: 0, output_price: 0}, {name: demo-2, input_price: 0, output_price: 0}]",
)


class AliasSynthesizer:
    """Gives model ``demo-1`` the extra public name ``fast``; records what it was handed."""

    def __init__(self) -> None:
        self.seen: list[Mapping[str, Any]] = []

    def synthesize(self, base: Config, overrides: Mapping[str, Any]) -> Config:
        self.seen.append(overrides)
        providers = {}
        for name, spec in base.providers.items():
            models = tuple(
                dataclasses.replace(m, aliases=(*m.aliases, "fast")) if m.name == "demo-1" else m for m in spec.models
            )
            providers[name] = dataclasses.replace(spec, models=models)
        return dataclasses.replace(base, providers=providers)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    (tmp_path / "auths").mkdir()
    return path


def test_the_protocol_is_structural() -> None:
    assert isinstance(AliasSynthesizer(), Synthesizer)
    assert isinstance(DefaultSynthesizer(), Synthesizer)
    assert not isinstance(object(), Synthesizer)


def test_from_config_serves_what_the_synthesizer_returns(config_path: Path) -> None:
    plain = Gateway.from_config(config_path, env={})
    assert plain.models_for(None) == ["demo-1"]

    gw = Gateway.from_config(config_path, synthesizer=AliasSynthesizer(), env={})
    assert sorted(gw.models_for(None)) == ["demo-1", "fast"]

    async def ask() -> dict[str, Any]:
        try:
            return await gw.chat({"model": "fast", "messages": [{"role": "user", "content": "ping"}]})
        finally:
            await gw.http.close()

    reply = asyncio.run(ask())
    assert "ping" in reply["choices"][0]["message"]["content"]


def test_overrides_hold_the_token_files_and_the_environment(config_path: Path) -> None:
    token = config_path.parent / "auths" / "claude-me.json"
    token.write_text('{"type": "claude", "access_token": "x"}')
    (config_path.parent / "auths" / "notes.txt").write_text("not a token file")
    synth = AliasSynthesizer()
    env = {"LLMPROXY_ROUTING_MAX_ATTEMPTS": "2", "HOME": "/nowhere"}
    gw = Gateway.from_config(config_path, synthesizer=synth, env=env)
    assert synth.seen == [{"auth_files": (token.absolute(),), "env": {"LLMPROXY_ROUTING_MAX_ATTEMPTS": "2"}}]
    assert gw.max_attempts == 2  # the environment layer is already in the base


def test_a_synthesizer_must_return_a_config(config_path: Path) -> None:
    class Broken:
        def synthesize(self, base: Config, overrides: Mapping[str, Any]) -> Config:
            return None  # type: ignore[return-value]

    with pytest.raises(TypeError, match="not a Config"):
        Gateway.from_config(config_path, synthesizer=Broken(), env={})


def test_watcher_hands_the_synthesized_config_to_on_change(config_path: Path) -> None:
    synth = AliasSynthesizer()
    gw = Gateway.from_config(config_path, synthesizer=synth, env={})
    applied = threading.Event()

    def on_change(config: Config) -> None:
        gw.apply(config)
        applied.set()

    watcher = Watcher(config_path, on_change=on_change, synthesizer=synth, debounce_ms=50, env={})
    assert watcher.auth_dir == (config_path.parent / "auths").absolute()  # from the config's auth.dir
    watcher.start()
    try:
        assert watcher.wait_ready(5)
        config_path.write_text(CONFIG2)
        assert applied.wait(5), "the watcher never called on_change"
        assert sorted(gw.models_for(None)) == ["demo-1", "demo-2", "fast"]

        applied.clear()
        token = config_path.parent / "auths" / "claude-me.json"
        token.write_text('{"type": "claude", "access_token": "x"}')
        assert applied.wait(5), "a new token file did not re-synthesize"
        assert synth.seen[-1]["auth_files"] == (token.absolute(),)
        assert sorted(gw.models_for(None)) == ["demo-1", "demo-2", "fast"]
    finally:
        watcher.stop()


def test_watcher_never_synthesizes_a_bad_file(config_path: Path) -> None:
    synth = AliasSynthesizer()
    errors: list[Exception] = []
    changes: list[Config] = []
    watcher = Watcher(config_path, on_change=changes.append, on_error=errors.append, synthesizer=synth, env={})
    config_path.write_text("providers:\n  d: {type: claud}\n")
    assert watcher.check_config() is False
    assert changes == [] and len(errors) == 1 and synth.seen == []
    assert [m.aliases for m in watcher.current().providers["d"].models] == [("fast",)]  # the last good file
