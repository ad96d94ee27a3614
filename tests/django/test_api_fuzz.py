"""Schemathesis over the management API's own schema: no input a client sends gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings

from tests import factories

#: Cases per operation: enough for nulls, wrong types and boundaries, small enough for CI.
EXAMPLES = 5


@pytest.fixture
def api_schema(db: Any) -> Iterator[Any]:
    # As Django's test client does: a request must not close the test's database connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def staff_key(db: Any) -> str:
    _, raw = factories.api_key(factories.user("root", staff=True), admin=True)
    return raw


@pytest.fixture
def known_ids(db: Any) -> dict[str, int]:
    """One of each resource; path ids point at them, so PATCH and DELETE reach real rows, not 404s."""
    p = factories.provider("fuzz", "http://127.0.0.1:9/v1")
    bob = factories.user("bob")
    key, _ = factories.api_key(bob)
    return {"/providers": p.pk, "/credentials": p.credentials.get().pk, "/models": p.routes.get().pk,
            "/users": bob.pk, "/keys": key.pk}  # fmt: skip


def test_it_never_answers_5xx(api_schema: Any, staff_key: str, known_ids: dict[str, int]) -> None:
    """Every operation, a few generated cases each (fixed seed): each answer is below 500."""
    headers = {"Authorization": f"Bearer {staff_key}"}
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        op = result.ok()
        if op.path.endswith("/test"):
            continue  # calls a real upstream; test_api covers it against a fake one
        operations += 1

        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            resource = "/" + case.path.removeprefix("/api/v1").split("/")[1]
            for name in case.path_parameters or {}:
                if resource in known_ids:
                    case.path_parameters[name] = known_ids[resource]
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r} -> {response.status_code}")

        run()
    assert operations > 20
    assert failures == []
