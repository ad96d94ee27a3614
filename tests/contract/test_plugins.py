"""Plugin modules (config.yaml ``plugins:``, ``LLMPROXY_PLUGINS``) register custom translators
and executors in every process that loads config, before it is validated.

End to end: a module in a temp dir on the import path registers a translator; a config
file naming both the module and the translator is imported with ``import_config`` and the
live server's gateway answers the OpenAI SDK through it. A module that does not import is
a config error naming it, not a traceback.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from django.core.management import CommandError, call_command

from llmproxy import formats, translator
from llmproxy.config import ConfigError, loads
from proxy.configsync.plugins import file_plugins
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

PLUGIN = """
from llmproxy import translator
from tests.unit.test_custom_plugins import ShoutCodec

translator.register({name!r}, ShoutCodec())
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(module name, translator name): the module written to a temp dir put on sys.path."""
    module, name = f"plug_{uuid.uuid4().hex[:8]}", f"plug-shout-{uuid.uuid4().hex[:6]}"
    (tmp_path / f"{module}.py").write_text(PLUGIN.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module, name
    sys.modules.pop(module, None)
    translator._factories.pop(name, None)
    formats._REGISTERED.pop(name, None)


def _config(tmp_path: Path, fake: FakeUpstream, module: str, name: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"plugins: [{module}]\nproviders:\n  plugged:\n    type: openai-compatible\n"
                    f"    translator: {name}\n    base_url: {fake.url}/v1\n"
                    "    credentials: [{name: k, api_key: sk-test}]\n    models: [{name: plugged-m, upstream: up-m}]\n")  # fmt: skip
    return path


def test_a_plugin_named_in_config_yaml_serves_through_the_live_gateway(
    plugin: tuple[str, str], tmp_path: Path, live: Any, fake: FakeUpstream
) -> None:
    module, name = plugin
    assert name not in translator.names()  # nothing registered it before the config was read
    path = _config(tmp_path, fake, module, name)
    assert file_plugins(str(path)) == [module]
    call_command("import_config", str(path))
    assert name in translator.names()
    _, key = factories.api_key(factories.user("plug"))
    live.reload()
    fake.queue("/v1/chat/completions", up.completion("quiet words"))
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0)
    out = client.chat.completions.create(model="plugged-m", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "QUIET WORDS"  # decoded by the plugin's codec
    assert fake.last().body["x_shout"] is True  # encoded by it


@pytest.mark.django_db
def test_a_plugin_that_does_not_import_is_a_config_error_naming_it(tmp_path: Path, fake: FakeUpstream) -> None:
    path = _config(tmp_path, fake, "no_such_plugin_mod", "never-registered")
    with pytest.raises(CommandError):
        call_command("import_config", str(path))
    with pytest.raises(ConfigError) as exc:
        loads(path.read_text())
    assert "plugins[0]" in str(exc.value) and "no_such_plugin_mod" in str(exc.value)
    assert "Traceback" not in str(exc.value)


def test_llmproxy_plugins_in_the_environment_are_imported_too(plugin: tuple[str, str]) -> None:
    module, name = plugin
    config = loads("", env={"LLMPROXY_PLUGINS": f" {module} , "})
    assert config.plugins == (module,) and name in translator.names()
    with pytest.raises(ConfigError) as exc:
        loads("", env={"LLMPROXY_PLUGINS": "missing_plugin_x"})
    assert "LLMPROXY_PLUGINS" in str(exc.value) and "missing_plugin_x" in str(exc.value)
    with pytest.raises(ConfigError) as bad:
        loads("plugins: notalist\n", env={})
    assert "plugins" in str(bad.value)


def test_a_dump_keeps_the_plugins(plugin: tuple[str, str]) -> None:
    from llmproxy.config import dump

    module, _ = plugin
    text = dump(loads(f"plugins: [{module}]\n", env={}))
    assert text.startswith(f"plugins:\n- {module}\n")
    assert loads(text, env={}).plugins == (module,)
