"""config.yaml: load, validate (every error at once), dump, and turn into a ``Runtime``.

    cfg = load("config.yaml")              # Config, or ConfigError listing every problem
    text = dump(cfg, with_secrets=False)   # secrets read <redacted>
    rt = load_runtime("config.yaml")       # what Gateway.from_config serves from

Strings may use ``${VAR}`` (``${VAR:-default}``; ``$$`` is a literal ``$``); an unset
variable is an error naming the path. ``LLMPROXY_<SECTION>_<KEY>`` (or
``CLI_PROXY_<SECTION>_<KEY>``) overrides a scalar key of server, auth, management,
logging, routing or images; the environment wins over the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..runtime import Runtime
from ._dump import dump, duration
from ._parse import content_hash, parse
from ._runtime import TokenFile, build_runtime, parse_expiry, read_token_file
from ._schema import (
    AUTH_TYPES,
    PROVIDER_TYPES,
    REDACTED,
    Auth,
    Config,
    ConfigError,
    ConfigIssue,
    CredentialSpec,
    Logging,
    Management,
    ModelSpec,
    ProviderSpec,
    RateLimit,
    Server,
    UsageSettings,
)


def loads(text: str, source: str = "<string>", *, env: Mapping[str, str] | None = None, base_dir: str = ".") -> Config:
    """Parse and validate config text; raise ``ConfigError`` listing every problem."""
    return parse(text, source, os.environ if env is None else env, base_dir)


def load(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a config file."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue("", "file not found")], str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue("", f"cannot read the file: {exc}")], str(p)) from None
    return loads(text, str(p), env=env, base_dir=str(p.resolve().parent))


def load_runtime(path: str | Path, *, env: Mapping[str, str] | None = None) -> Runtime:
    """A snapshot for library use (``Gateway.from_config``): no API keys required."""
    return build_runtime(load(path, env=env), require_keys=False)


__all__ = [
    "AUTH_TYPES",
    "PROVIDER_TYPES",
    "REDACTED",
    "Auth",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "CredentialSpec",
    "Logging",
    "Management",
    "ModelSpec",
    "ProviderSpec",
    "RateLimit",
    "Server",
    "TokenFile",
    "UsageSettings",
    "build_runtime",
    "content_hash",
    "dump",
    "duration",
    "load",
    "load_runtime",
    "loads",
    "parse_expiry",
    "read_token_file",
]
