"""The seed's Synthesizer: turn the file's config plus what lies beside it into the served config.

config.yaml is only one layer. The token files in the auth dir and the environment sit
next to it, and a library user may want a layer of their own (a model alias, a provider
added from a secret store). A synthesizer is that last step: ``Gateway.from_config`` and
``Watcher`` both call ``synthesize(base, overrides)`` and serve what it returns.

``overrides`` is built by :func:`collect_overrides` and holds:

- ``"auth_files"``: ``tuple[Path, ...]``, the ``*.json`` token files in the config's auth
  dir, sorted (empty when the dir does not exist);
- ``"env"``: ``dict[str, str]``, the ``LLMPROXY_*`` and ``CLI_PROXY_*`` variables of the
  environment the config was parsed with.

Both are already applied to ``base`` when it reaches the synthesizer (the parser applies
the environment, and the runtime builder reads the token files), so the default
synthesizer returns ``base`` unchanged; the mapping is there for a synthesizer that wants
to decide more from them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from .config import Config

ENV_PREFIXES = ("LLMPROXY_", "CLI_PROXY_")


@runtime_checkable
class Synthesizer(Protocol):
    """Anything with this method; it must not mutate ``base`` (configs are frozen anyway)."""

    def synthesize(self, base: Config, overrides: Mapping[str, Any]) -> Config: ...


class DefaultSynthesizer:
    """Serves the parsed config as it is: the environment and token files are already in it."""

    def synthesize(self, base: Config, overrides: Mapping[str, Any]) -> Config:
        return base


def collect_overrides(config: Config, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``overrides`` mapping a synthesizer receives for ``config`` (see the module doc)."""
    source = os.environ if env is None else env
    auth_dir = config.auth_dir()
    files = sorted(p for p in auth_dir.glob("*.json") if p.is_file()) if auth_dir.is_dir() else []
    return {
        "auth_files": tuple(files),
        "env": {k: v for k, v in source.items() if k.startswith(ENV_PREFIXES)},
    }


def synthesize(config: Config, synthesizer: Synthesizer | None, env: Mapping[str, str] | None = None) -> Config:
    """Run ``synthesizer`` (the default when None) over ``config``; refuse a non-Config result."""
    chosen = synthesizer if synthesizer is not None else DefaultSynthesizer()
    out = chosen.synthesize(config, collect_overrides(config, env))
    if not isinstance(out, Config):
        raise TypeError(f"{type(chosen).__name__}.synthesize returned {type(out).__name__}, not a Config")
    return out


__all__ = ["DefaultSynthesizer", "Synthesizer", "collect_overrides", "synthesize"]
