"""What of an error the client may see, and what only staff may (INTERFACE.md section 11).

An upstream's own words reach the client only when the client's request was at fault
(an upstream 400, 404, 413 or 422): then they are what the client needs to fix it. For
the gateway's own troubles (its credentials refused, a rate limit, a timeout, a 5xx, a
broken reply) the client gets llmproxy's message, naming the public model and the kind
of failure: upstream text there names providers, accounts and key fragments. The full
story goes to the usage record (``error_detail``, shown to staff only) and the log.
Everything either way is scrubbed of configured secrets.
"""

from __future__ import annotations

from .errors import (
    LLMProxyError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderProtocolError,
    ProviderTimeout,
)
from .scrub import Scrubber

#: Upstream statuses that mean "your request": their text is the client's to read.
CLIENT_FAULT = frozenset({400, 404, 413, 422})
DETAIL_MAX = 2000


def for_client(err: LLMProxyError, model: str | None, scrubber: Scrubber) -> LLMProxyError:
    """A copy of ``err`` whose message the client may read (status, code and Retry-After kept)."""
    if isinstance(err, ProviderError):
        if isinstance(err, ProviderHTTPError) and err.upstream_status in CLIENT_FAULT:
            message = _unprefixed(err)
        else:
            message = own_message(err, model)
    else:
        message = err.message
    # Not copy.copy: it rebuilds from ``args`` and the subclasses' keyword-only arguments.
    shown = type(err).__new__(type(err))
    shown.__dict__.update(err.__dict__)
    shown.message = scrubber.scrub(message)
    shown.args = (shown.message,)
    return shown


def own_message(err: ProviderError, model: str | None) -> str:
    """llmproxy's words for an upstream failure: the public model and the kind of trouble."""
    subject = f"model {model!r}" if model else "the upstream"
    status = err.upstream_status if isinstance(err, ProviderHTTPError) else None
    if status in (401, 402, 403):
        return f"{subject}: the upstream refused the gateway's credentials; try again later or ask the operator"
    if status == 429:
        return f"{subject}: the upstream's rate limit was reached; retry later"
    if isinstance(err, ProviderTimeout) or status in (408, 504):
        return f"{subject}: the upstream did not answer in time"
    if isinstance(err, ProviderConnectionError):
        return f"{subject}: the upstream could not be reached"
    if isinstance(err, ProviderProtocolError):
        return f"{subject}: the upstream sent a reply that could not be read"
    if status is not None and status < 500:
        return f"{subject}: the upstream refused the request (HTTP {status})"
    return f"{subject}: the upstream failed; retry later"


def detail(err: LLMProxyError, provider: str, credential: str) -> str:
    """What staff see in the usage record: who failed and the upstream's own words (unscrubbed here)."""
    who = f"{provider}/{credential}" if provider and credential else provider
    status = f" HTTP {err.upstream_status}" if isinstance(err, ProviderHTTPError) else ""
    head = f"{who}{status} {err.code}".strip()
    return f"{head}: {err.message}"


def joined(details: list[str], scrubber: Scrubber) -> str:
    """Every attempt's detail, last first once it is too long, scrubbed."""
    text = " | ".join(details)
    if len(text) > DETAIL_MAX:
        text = "…" + text[-(DETAIL_MAX - 1) :]
    return scrubber.scrub(text)


def _unprefixed(err: ProviderError) -> str:
    """The upstream's message without the ``provider: `` the executor put in front."""
    if err.provider and err.message.startswith(f"{err.provider}: "):
        return err.message[len(err.provider) + 2 :]
    return err.message
