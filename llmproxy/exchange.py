"""One call through the pipeline: what came in, what goes out, and what it has done so far.

``Call`` is the wire-level request, ``Reply``/``StreamReply`` the answer. ``Exchange`` is
the one per-call object the pipeline passes around instead of long parameter lists: the
call, its codec and snapshot, the decoded request, the key, the routing plan, the
attempt in progress (candidate, executor, upstream codec) and the usage event it fills
in. Bookkeeping (``llmproxy.bookkeeping``) turns it into the single ``UsageEvent``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from . import disclosure, formats
from .errors import LLMProxyError, ProviderTimeout
from .formats import Traits
from .http import Timeouts
from .limits import Reservation
from .model import Request
from .overrides import NONE, Overrides
from .providers.base import Credential, Executor
from .routing import Candidate, Plan
from .runtime import ApiKeyInfo, Route, Runtime
from .tokens import count_request
from .usage import UsageEvent

CONTENT_JSON = "application/json"
CONTENT_SSE = "text/event-stream"


@dataclass(slots=True)
class Call:
    """One client request as it came off the wire."""

    ingress: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    api_key: str | None = None
    model: str | None = None  # from the path (Gemini)
    stream: bool | None = None  # from the path (Gemini :streamGenerateContent)
    sse: bool = True  # Gemini streams: SSE or a JSON array
    request_id: str = ""
    #: Query parameters that may carry per-request overrides (``llmproxy.overrides.NAMES``).
    query: Mapping[str, str] = field(default_factory=dict)
    #: Per-request overrides from a library caller: ``{"provider": ..., "timeout": ..., "retries": ...}``.
    overrides: Mapping[str, Any] | None = None
    #: The client's address (``llmproxy.throttle.client_address``): failed keys are throttled per address.
    client: str = ""


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamReply:
    status: int
    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Exchange:
    """Everything one call carries from decode to the usage record."""

    call: Call
    runtime: Runtime
    codec: ModuleType  # the client's dialect
    event: UsageEvent
    started: float  # monotonic
    endpoint: str = "chat"
    body: dict[str, Any] = field(default_factory=dict)  # the client's decoded JSON
    request: Request | None = None
    key: ApiKeyInfo | None = None
    plan: Plan | None = None
    #: What the key's and user's limits hold for this call until it is recorded.
    reservation: Reservation | None = None
    # The attempt in progress (set by ``begin_attempt``).
    candidate: Candidate | None = None
    executor: Executor | None = None
    upstream_codec: ModuleType | None = None
    passthrough: bool = False
    #: Each failed attempt's detail (``disclosure.detail``), for the usage record.
    failures: list[str] = field(default_factory=list)
    last_failure: LLMProxyError | None = None
    #: This request's per-request overrides (``llmproxy.overrides``), once checked.
    overrides: Overrides = NONE
    #: A Responses API call to be kept when it completes (``llmproxy.conversations.Turn``).
    turn: Any = None
    #: The upstream dialect of the attempt in progress.
    dialect: str = ""
    #: The tokenizer's count of the request's prompt, once counted (budget estimate or usage fill-in).
    prompt_tokens: int | None = None

    def counted_prompt(self) -> int:
        """The request's prompt tokens by the gateway's own tokenizer (counted once per call)."""
        if self.prompt_tokens is None:
            self.prompt_tokens = count_request(self.request) if self.request is not None else 0
        return self.prompt_tokens

    @classmethod
    def open(cls, call: Call, runtime: Runtime, codec: ModuleType, endpoint: str = "chat") -> Exchange:
        rid = call.request_id or uuid.uuid4().hex
        event = UsageEvent(request_id=rid, created_at=time.time(), ingress=call.ingress)
        return cls(call, runtime, codec, event, time.monotonic(), endpoint)

    @property
    def request_id(self) -> str:
        return self.event.request_id

    @property
    def traits(self) -> Traits:
        """The client dialect's traits."""
        return formats.traits(self.codec)

    def identify(self, key: ApiKeyInfo | None) -> None:
        """The authenticated client key, onto the call and its usage event."""
        self.key = key
        if key is not None:
            self.event.user_id, self.event.key_id, self.event.key_prefix = key.user_id, key.id, key.prefix

    def use_overrides(self, overrides: Overrides) -> None:
        """The call's checked overrides, onto the exchange and its usage event."""
        self.overrides = overrides
        self.event.overrides = overrides.record()

    def routes_for(self, model: str) -> tuple[Route, ...]:
        """The routes that may serve ``model`` for this call (only the overriding provider's, if any)."""
        routes = self.runtime.routes.get(model, ())
        only = self.overrides.provider
        return routes if only is None else tuple(r for r in routes if r.provider.name == only)

    def timeouts(self, configured: Timeouts) -> Timeouts:
        """The upstream timeouts of this call: the configured ones, shortened by a ``timeout`` override."""
        t = self.overrides.timeout
        if t is None:
            return configured
        return Timeouts(connect=min(t, configured.connect), first_byte=min(t, configured.first_byte),
                        read=min(t, configured.read))  # fmt: skip

    def cools(self, err: LLMProxyError) -> bool:
        """Whether a failure says something about the upstream: not a timeout the client shortened."""
        return not (isinstance(err, ProviderTimeout) and self.overrides.timeout is not None)

    def begin_attempt(self, cand: Candidate, attempts: int) -> None:
        """The next candidate is tried: the event names it, the attempt fields point at it."""
        self.candidate = cand
        self.executor = self.runtime.executors[cand.route.provider.name]
        self.use_credential(cand.credential)
        ev = self.event
        ev.attempts = attempts
        ev.provider = cand.route.provider.name
        ev.credential = cand.credential.name
        ev.upstream_model = cand.route.upstream_model

    def use_credential(self, credential: Credential) -> None:
        """Speak the dialect the executor uses for this model with this credential (fresh tokens may change it)."""
        assert self.executor is not None and self.candidate is not None
        dialect = self.executor.dialect_for(self.candidate.route.upstream_model, credential)
        self.dialect = dialect
        self.passthrough = dialect == self.call.ingress
        self.upstream_codec = self.codec if self.passthrough else formats.get(dialect)

    def note_failure(self, err: LLMProxyError) -> None:
        """An attempt failed: keep its detail (provider, credential, upstream text) for staff, once."""
        if err is not self.last_failure:
            self.last_failure = err
            self.failures.append(disclosure.detail(err, self.event.provider, self.event.credential))

    def reply_headers(self) -> dict[str, str]:
        """The headers every successful reply carries: which provider, after how many attempts."""
        return {"x-request-id": self.event.request_id, "x-llmproxy-provider": self.event.provider,
                "x-llmproxy-attempts": str(self.event.attempts)}  # fmt: skip
