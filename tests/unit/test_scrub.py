"""The secret scrubber: whole secrets, 8+ character fragments, client keys, log records."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmproxy import scrub
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import Route, Runtime
from llmproxy.scrub import REDACTED, Scrubber, SecretFilter, sensitive_values

KEY = "sk-proj-Abc123XyZ789qwertyUIOP456"
TOKEN = "ya29.a0AfH6SMBx-refresh-token-value"


def test_scrub_replaces_a_whole_secret() -> None:
    s = Scrubber([KEY])
    assert s.scrub(f"Incorrect API key provided: {KEY}.") == f"Incorrect API key provided: {REDACTED}."


@pytest.mark.parametrize(("start", "length"), [(0, 8), (5, 8), (10, 12), (len(KEY) - 8, 8), (3, 20)])
def test_scrub_replaces_any_fragment_of_eight_or_more(start: int, length: int) -> None:
    fragment = KEY[start : start + length]
    out = Scrubber([KEY]).scrub(f"key ...{fragment}... was refused")
    assert fragment not in out and out == f"key ...{REDACTED}... was refused"


def test_scrub_keeps_fragments_shorter_than_eight_and_other_text() -> None:
    s = Scrubber([KEY])
    text = f"the key ends in {KEY[-4:]} and starts {KEY[:7]}; nothing else matches"
    assert s.scrub(text) == text


def test_scrub_handles_several_secrets_and_adjacent_fragments() -> None:
    s = Scrubber([KEY, TOKEN, None, "short"])
    out = s.scrub(f"a={KEY} b={TOKEN[:10]}{KEY[-9:]} c=short")
    assert out == f"a={REDACTED} b={REDACTED} c=short"


def test_scrub_replaces_llmproxy_client_keys_by_shape() -> None:
    client_key = "sk-llmp-" + "Q" * 43
    assert Scrubber().scrub(f"Bearer {client_key}") == f"Bearer sk-llmp-{REDACTED}"


def test_scrub_value_walks_json() -> None:
    s = Scrubber([KEY])
    body = {"error": {"message": f"bad key {KEY}", "details": [KEY[2:12], 3, None]}, KEY: True}
    assert s.scrub_value(body) == {"error": {"message": f"bad key {REDACTED}", "details": [REDACTED, 3, None]},
                                   REDACTED: True}  # fmt: skip


def test_sensitive_values_take_secret_looking_names_at_any_depth() -> None:
    data = {"Authorization": "Bearer abcdefgh12345678", "X-Team": "research", "nested": {"client_secret": "s3cr3t!!x"}}
    assert sorted(sensitive_values(data)) == ["Bearer abcdefgh12345678", "abcdefgh12345678", "s3cr3t!!x"]


def test_runtime_scrubber_knows_every_secret_of_the_snapshot() -> None:
    provider = ProviderConfig("p", "openai", headers={"X-Api-Key": "header-secret-12345", "Accept": "application/json"},
                              options={"auth": {"token": "option-token-67890"}})  # fmt: skip
    cred = Credential("c", "p", api_key=KEY, access_token=TOKEN, extra={"private_key": "extra-private-key-1"})
    rt = Runtime.build(routes=[Route("m", "m", provider, (cred,))], extra_secrets=("metrics-bearer-token",))
    text = f"{KEY} {TOKEN} header-secret-12345 option-token-67890 extra-private-key-1 metrics-bearer-token"
    assert rt.scrubber.scrub(text) == " ".join([REDACTED] * 6)
    assert rt.scrubber.scrub("application/json") == "application/json"  # not secret-looking: kept
    assert rt.scrubber is rt.scrubber  # built once per snapshot


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    secret=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=8, max_size=40),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    data=st.data(),
)
def test_scrub_never_leaves_an_eight_character_fragment(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    secret = secret.strip()
    if len(secret) < 8:
        return
    start = data.draw(st.integers(0, len(secret) - 8))
    end = data.draw(st.integers(start + 8, len(secret)))
    out = Scrubber([secret]).scrub(before + secret[start:end] + after)
    assert all(secret[i : i + 8] not in out for i in range(len(secret) - 7))


def test_secret_filter_scrubs_messages_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tests.scrub")
    handler = caplog.handler
    handler.addFilter(SecretFilter())
    scrub.set_active(Scrubber([KEY]))
    try:
        log.warning("upstream said %s", f"bad key {KEY}")
        try:
            raise ValueError(f"header was Bearer {KEY}")
        except ValueError:
            log.exception("call failed")
    finally:
        scrub.set_active(scrub.EMPTY)
        handler.removeFilter(handler.filters[-1])
    text = caplog.text
    assert KEY not in text and KEY[:8] not in text and KEY[-8:] not in text
    assert f"upstream said bad key {REDACTED}" in text and f"ValueError: header was Bearer {REDACTED}" in text
