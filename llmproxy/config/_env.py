"""The environment's part in a config: ``${VAR}`` interpolation and ``LLMPROXY_<SECTION>_<KEY>``.

Values that come from the environment are ``EnvText``: strings that remember where they
came from (for error messages) and that the validator may read as a number or a boolean,
since the environment only has strings. Literal YAML strings get no such leniency.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from ._schema import SECTIONS, ConfigIssue

ENV_PREFIXES = ("LLMPROXY_", "CLI_PROXY_")
_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class EnvText(str):
    """A string taken from the environment; ``origin`` says from where."""

    origin: str

    def __new__(cls, value: str, origin: str) -> EnvText:
        obj = super().__new__(cls, value)
        obj.origin = origin
        return obj


def interpolate(data: Any, env: Mapping[str, str], issues: list[ConfigIssue], path: str = "") -> Any:
    """Replace ``${VAR}`` (and ``${VAR:-default}``) in every string; ``$$`` is a literal ``$``."""
    if isinstance(data, dict):
        return {k: interpolate(v, env, issues, _join(path, str(k))) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, env, issues, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str) and "$" in data:
        return _substitute(data, env, issues, path)
    return data


def _substitute(text: str, env: Mapping[str, str], issues: list[ConfigIssue], path: str) -> str:
    missing: list[str] = []

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return m.group(0)  # keep the reference, so the value is not also reported as empty

    out = _REF.sub(repl, text)
    for name in missing:
        issues.append(ConfigIssue(path, f"environment variable {name} is not set"))
    whole = _REF.fullmatch(text)
    if whole and whole.group(1):
        return EnvText(out, "${" + whole.group(1) + "}")
    return out


def apply_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """Set ``data[section][key]`` from ``LLMPROXY_SECTION_KEY`` (which wins) or ``CLI_PROXY_SECTION_KEY``."""
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            for prefix in reversed(ENV_PREFIXES):  # the first prefix is applied last, so it wins
                name = f"{prefix}{section.upper()}_{f.name.upper()}"
                if name not in env:
                    continue
                block = data.get(section)
                if block is None:
                    block = data[section] = {}
                if isinstance(block, dict):
                    block[f.name] = EnvText(env[name], name)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
