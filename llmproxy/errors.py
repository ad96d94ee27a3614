"""The one error tree of the engine.

    LLMProxyError                      500 internal_error
    ├── InvalidRequest                 400 invalid_request   (param names the field)
    ├── AuthenticationFailed           401 invalid_api_key
    ├── PermissionDenied               403 model_not_allowed
    ├── ModelNotFound                  404 model_not_found
    ├── RequestTooLarge                413 request_too_large
    ├── LimitExceeded                  429 rate_limit_exceeded (retry_after)
    ├── NoRouteAvailable               503 or 429 (retry_after)
    └── ProviderError                  502 upstream_error   (retryable)
        ├── ProviderHTTPError          status mapped from the upstream's
        ├── ProviderTimeout            504 upstream_timeout
        ├── ProviderConnectionError    502 upstream_unreachable
        └── ProviderProtocolError      502 bad_upstream_response

Every class carries an HTTP ``status``, a stable ``code`` and ``retryable``. Foreign
exceptions (aiohttp, JSON decoding) are translated at the upstream I/O boundary only;
each dialect has one renderer turning these into its own error body.
"""

from __future__ import annotations


class LLMProxyError(Exception):
    status: int = 500
    code: str = "internal_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.param = param
        self.retry_after = retry_after


class InvalidRequest(LLMProxyError):
    status = 400
    code = "invalid_request"


class AuthenticationFailed(LLMProxyError):
    status = 401
    code = "invalid_api_key"


class PermissionDenied(LLMProxyError):
    status = 403
    code = "model_not_allowed"


class ModelNotFound(LLMProxyError):
    status = 404
    code = "model_not_found"


class RequestTooLarge(LLMProxyError):
    status = 413
    code = "request_too_large"


class LimitExceeded(LLMProxyError):
    status = 429
    code = "rate_limit_exceeded"


class NoRouteAvailable(LLMProxyError):
    status = 503
    code = "no_route_available"


class ProviderError(LLMProxyError):
    status = 502
    code = "upstream_error"
    retryable = True

    def __init__(self, message: str, *, provider: str | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.provider = provider


class ProviderHTTPError(ProviderError):
    """The upstream answered with an error status; ``upstream_status`` keeps it."""

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        provider: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            retry_after=retry_after,
            status=status if status is not None else client_status_for(upstream_status),
            code=code or "upstream_error",
        )
        self.upstream_status = upstream_status
        self.retryable = (
            retryable if retryable is not None else upstream_status in (408, 409, 429) or upstream_status >= 500
        )


class ProviderTimeout(ProviderError):
    status = 504
    code = "upstream_timeout"


class ProviderConnectionError(ProviderError):
    status = 502
    code = "upstream_unreachable"


class ProviderProtocolError(ProviderError):
    status = 502
    code = "bad_upstream_response"


def client_status_for(upstream_status: int) -> int:
    """The status a client sees for an upstream error status: never a bare 500."""
    if upstream_status in (400, 404, 413, 422):
        return 400 if upstream_status == 422 else upstream_status
    if upstream_status in (401, 403):
        # The client's key was fine; the gateway's upstream credential was not.
        return 502
    if upstream_status == 429:
        return 429
    if upstream_status in (408, 504):
        return 504
    if upstream_status >= 500:
        return 503 if upstream_status in (503, 529) else 502
    return 502
