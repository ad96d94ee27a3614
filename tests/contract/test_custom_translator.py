"""A custom translator named on a provider row (``options.translator``, config.yaml's
``translator:``) is used by the serving gateway: the OpenAI SDK's request goes through it.

The codec is registered in this process, as a deployment registers its own before
``serve`` starts; the management API refuses a name that is not registered.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from django.test import Client

from llmproxy import formats, translator
from proxy.models import Provider
from tests import factories
from tests.django.helpers import send
from tests.fakes import FakeUpstream
from tests.fakes import openai as up
from tests.unit.test_custom_plugins import ShoutCodec


@pytest.fixture
def shout() -> Iterator[None]:
    translator.register("test-shout", ShoutCodec())
    yield
    translator._factories.pop("test-shout", None)
    formats._REGISTERED.pop("test-shout", None)


def test_the_serving_gateway_translates_through_a_registered_translator(shout: None, live: Any,
                                                                        fake: FakeUpstream) -> None:  # fmt: skip
    p = factories.provider("custom", fake.url + "/v1", models=[{"name": "m", "upstream": "up-m"}])
    Provider.objects.filter(pk=p.pk).update(options={"translator": "test-shout"})
    _, key = factories.api_key(factories.user("sam"))
    live.reload()
    fake.queue("/v1/chat/completions", up.completion("quiet words"))
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0)
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "QUIET WORDS"
    assert fake.last().body["x_shout"] is True


@pytest.mark.django_db
def test_the_api_refuses_a_translator_not_registered(admin_client: Client, shout: None) -> None:
    body = {"name": "x", "type": "openai", "options": {"translator": "no-such"}}
    resp = send(admin_client, "post", "/providers", body)
    assert resp.status_code == 422 and "no-such" in resp.content.decode()
    resp = send(admin_client, "post", "/providers", {**body, "options": {"translator": "test-shout"}})
    assert resp.status_code == 201, resp.content
