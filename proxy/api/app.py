"""The management REST API (``/api/v1/``): one django-ninja app, its error rendering, every resource mounted.

Callers authenticate as ``auth`` says. A refused change (``accounts.validation``'s
``ServiceError``, ``ValidationFailed``) is rendered here, in one place, with its status
and in ninja's own shape for field errors. Each resource is one module of this package.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.operation import Operation

from accounts.validation import ServiceError, ValidationFailed

from .accounts import keys_router, users_router
from .auth import AUTH, detail
from .ops import ops_router
from .providers import credentials_router, models_router, providers_router
from .throttle import TooManyKeyFailures
from .usage_records import usage_router

#: The modules the resources lived in when the OpenAPI operation ids were first published;
#: ninja derives an id from the view's module, and a client generated from the schema
#: should not see its method names change because a file moved.
_PUBLISHED_MODULES = {
    "proxy.api.providers": "proxy.api",
    "proxy.api.ops": "proxy.api",
    "proxy.api.accounts": "accounts.api",
    "proxy.api.usage_records": "proxy.api_usage",
}


class ManagementAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        module = operation.view_func.__module__
        return f"{_PUBLISHED_MODULES.get(module, module)}_{operation.view_func.__name__}".replace(".", "_")


api = ManagementAPI(
    title="llmproxy management API",
    version="1",
    description="Manage providers, credentials, model routes, users, API keys and usage. "
    "Authenticate with a browser session or `Authorization: Bearer <key>` of a key created with `--admin`.",
    urls_namespace="api-v1",
    auth=AUTH,
)


@api.exception_handler(ValidationFailed)
def _validation_failed(request: HttpRequest, exc: ValidationFailed) -> HttpResponse:
    return api.create_response(request, detail(exc.errors), status=exc.status)


@api.exception_handler(ServiceError)
def _service_error(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message}, status=exc.status)


@api.exception_handler(TooManyKeyFailures)
def _too_many_key_failures(request: HttpRequest, exc: TooManyKeyFailures) -> HttpResponse:
    response = api.create_response(request, {"detail": str(exc)}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


api.add_router("/providers", providers_router)
api.add_router("/credentials", credentials_router)
api.add_router("/models", models_router)
api.add_router("/users", users_router)
api.add_router("/keys", keys_router)
api.add_router("/usage", usage_router)
api.add_router("/", ops_router)

__all__ = ["api"]
