"""Two ``serve`` instances on one database without Redis: the second says its limits are its own.

Without a shared store each instance enforces limits, budgets and cooldowns alone, so a
key would get its limits once per instance (INTERFACE.md sections 10 and 13); ``serve``
refuses ``--workers N`` then (tests/django/test_server_address.py), and an instance that
finds another on its database warns.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.management.commands.serve import LONE_LIMITS
from proxy.serving.instances import claim_serving, release_serving

from .conftest import Serve, child_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_instance_without_redis_warns_that_its_limits_are_its_own(django_db_setup: Any) -> None:
    env = child_env(embedded_broker=True)  # no REDIS_URL
    first, second = Serve(env, "--no-jobs"), Serve(env, "--no-jobs")
    try:
        first.start()
        first.wait_ready()
        second.start()
        second.wait_ready()
        assert LONE_LIMITS not in first.output()
        assert LONE_LIMITS in second.output()
        assert claim_serving() is False  # the first still holds this database's lock
        first.stop()
        assert claim_serving() is True  # given back when its process ended
    finally:
        release_serving()
        for s in (first, second):
            s.stop()
