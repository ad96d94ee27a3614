"""llmproxy's engine: translation, routing and upstream I/O, with no Django inside.

Public names are re-exported here; everything else is an implementation detail.
"""

from __future__ import annotations

from . import formats, providers, translator
from .errors import (
    AuthenticationFailed,
    InvalidRequest,
    LimitExceeded,
    LLMProxyError,
    ModelNotFound,
    NoRouteAvailable,
    PermissionDenied,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    RequestTooLarge,
)
from .gateway import Call, Gateway, Reply, StreamReply
from .http import HTTPClient
from .model import Message, Request, Response, Usage
from .providers import Credential, Executor, ProviderConfig
from .runtime import ApiKeyInfo, Price, Route, Runtime
from .synthesizer import DefaultSynthesizer, Synthesizer
from .translator import Translator
from .usage import UsageEvent
from .watcher import Watcher

__all__ = [
    "ApiKeyInfo",
    "AuthenticationFailed",
    "Call",
    "Credential",
    "DefaultSynthesizer",
    "Executor",
    "Gateway",
    "HTTPClient",
    "InvalidRequest",
    "LLMProxyError",
    "LimitExceeded",
    "Message",
    "ModelNotFound",
    "NoRouteAvailable",
    "PermissionDenied",
    "Price",
    "ProviderConfig",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderTimeout",
    "Reply",
    "Request",
    "RequestTooLarge",
    "Response",
    "Route",
    "Runtime",
    "StreamReply",
    "Synthesizer",
    "Translator",
    "Usage",
    "UsageEvent",
    "Watcher",
    "formats",
    "providers",
    "translator",
]
