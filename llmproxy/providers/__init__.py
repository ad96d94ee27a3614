"""Upstream executors by provider type: a registry of dotted paths, imported lazily."""

from __future__ import annotations

import importlib
from typing import Any

from .. import translator
from .base import Credential, Executor, ProviderConfig

EXECUTORS: dict[str, str] = {
    "openai": "llmproxy.providers.openai:OpenAIExecutor",
    "openrouter": "llmproxy.providers.openai:OpenAIExecutor",
    "together": "llmproxy.providers.openai:OpenAIExecutor",
    "fireworks": "llmproxy.providers.openai:OpenAIExecutor",
    "openai-compatible": "llmproxy.providers.openai:OpenAIExecutor",
    "claude": "llmproxy.providers.anthropic:AnthropicExecutor",
    "anthropic": "llmproxy.providers.anthropic:AnthropicExecutor",
    "gemini": "llmproxy.providers.gemini:GeminiExecutor",
    "copilot": "llmproxy.providers.copilot:CopilotExecutor",
    "kiro": "llmproxy.providers.kiro:KiroExecutor",
    "demo": "llmproxy.providers.demo:DemoExecutor",
}


#: Executor classes registered as classes (``register``): used as they are, never re-imported.
_CLASSES: dict[str, type[Executor]] = {}


def get(name: str) -> type[Executor]:
    """The executor class for a provider type."""
    path = EXECUTORS.get(name)
    registered = _CLASSES.get(name)
    if registered is not None and path == _path_of(registered):
        return registered
    try:
        path = EXECUTORS[name]
    except KeyError:
        raise KeyError(f"unknown provider type {name!r}; known: {', '.join(sorted(EXECUTORS))}") from None
    module, _, attr = path.partition(":")
    cls: Any = getattr(importlib.import_module(module), attr)
    return cls  # type: ignore[no-any-return]


def register(name: str, executor: type[Executor] | str) -> None:
    """Make a custom executor usable by provider type ``name`` (a class or "module:Class")."""
    if isinstance(executor, str):
        EXECUTORS[name] = executor
        _CLASSES.pop(name, None)
    else:
        EXECUTORS[name] = _path_of(executor)
        _CLASSES[name] = executor  # a class from a script or a notebook need not be importable


def _path_of(cls: type[Executor]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def create(config: ProviderConfig) -> Executor:
    """The executor for a provider; its ``options.translator`` (config.yaml's ``translator:``)
    sets the dialect its requests and replies are translated through."""
    executor = get(config.type)(config)
    name = config.options.get("translator")
    if name:
        executor.dialect = translator.dialect_of(str(name))
    return executor


__all__ = ["EXECUTORS", "Credential", "Executor", "ProviderConfig", "create", "get", "register"]
