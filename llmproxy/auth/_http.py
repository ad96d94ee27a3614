"""The few HTTP calls account code makes (form or JSON in, JSON out), over the engine's client.

Every call names llmproxy honestly in ``User-Agent``; callers add what a provider
requires beside it. Transport failures and non-JSON answers become ``AuthError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .._version import USER_AGENT
from ..errors import ProviderError
from ..http import HTTPClient, Timeouts, UpstreamRequest

#: Account endpoints answer at once or not at all: no five-minute model wait here.
_TIMEOUTS = Timeouts(connect=10.0, first_byte=30.0, read=30.0)


class AuthError(Exception):
    """A login or refresh that did not work; ``permanent`` when retrying cannot help.

    ``permanent`` (``invalid_grant``, a revoked or expired grant, access denied) means the
    credential needs a new login; otherwise (network, 5xx) a later try may succeed.
    """

    def __init__(self, message: str, *, permanent: bool = False, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True, slots=True)
class JSONReply:
    status: int
    data: dict[str, Any]
    headers: Mapping[str, str]


async def call(
    http: HTTPClient,
    method: str,
    url: str,
    *,
    form: Mapping[str, str] | None = None,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    proxy: str | None = None,
) -> JSONReply:
    """One request (through ``proxy``, the provider's, when given); the reply's JSON object."""
    hdrs = {"user-agent": USER_AGENT, "accept": "application/json"}
    body: bytes | None = None
    if form is not None:
        hdrs["content-type"] = "application/x-www-form-urlencoded"
        body = urlencode(form).encode()
    elif json_body is not None:
        hdrs["content-type"] = "application/json"
        body = json.dumps(json_body).encode()
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    try:
        reply = await http.send(UpstreamRequest(method, url, hdrs, body, False, proxy), timeouts=_TIMEOUTS)
        raw = await reply.read()
    except ProviderError as exc:
        raise AuthError(f"{url}: {exc.message}") from None
    if not raw.strip():
        return JSONReply(reply.status, {}, reply.headers)
    try:
        data = json.loads(raw)
    except ValueError:
        raise AuthError(f"{url} answered HTTP {reply.status} with a body that is not JSON") from None
    if not isinstance(data, dict):
        data = {"value": data}
    return JSONReply(reply.status, data, reply.headers)


def oauth_error(reply: JSONReply) -> tuple[str, str]:
    """The (code, description) of an OAuth 2 error body, whatever its shape."""
    err = reply.data.get("error")
    if isinstance(err, dict):  # {"error": {"type"/"code", "message"}}
        return str(err.get("type") or err.get("code") or err.get("status") or ""), str(err.get("message") or "")
    desc = reply.data.get("error_description") or reply.data.get("message") or ""
    return (str(err) if err else ""), str(desc)


#: OAuth error codes after which only a new login helps.
PERMANENT_ERRORS = frozenset({"invalid_grant", "access_denied", "unauthorized_client", "invalid_client",
                              "expired_token", "invalid_token"})  # fmt: skip
