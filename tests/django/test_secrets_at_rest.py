"""Secrets at rest: the raw database holds only ciphertext, and the keys rotate."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

from proxy.models import Credential, Provider, UsageRecord
from tests import factories

from .helpers import send

pytestmark = pytest.mark.django_db

SECRETS = {
    "header": "Bearer hdr-secret-0a1b2c3d4e",
    "option": "opt-client-secret-5f6g7h8i",
    "api_key": "sk-at-rest-api-key-9j0k1l2m",
    "access": "access-token-3n4o5p6q7r8s",
    "refresh": "refresh-token-9t0u1v2w3x",
    "extra": "extra-private-key-4y5z6a7b",
    "proxy": "proxy-password-8c9d0e1f",
}


def _store() -> Credential:
    p = Provider.objects.create(name="vault", type="openai-compatible", base_url="https://up.example.com/v1",
                                headers={"Authorization": SECRETS["header"], "X-Team": "research"},
                                options={"oauth": {"client_secret": SECRETS["option"]}},
                                proxy=f"http://user:{SECRETS['proxy']}@proxy.example.com:3128")  # fmt: skip
    return Credential.objects.create(provider=p, name="k", api_key=SECRETS["api_key"],
                                     access_token=SECRETS["access"], refresh_token=SECRETS["refresh"],
                                     extra={"private_key": SECRETS["extra"], "region": "eu"})  # fmt: skip


def raw_rows() -> str:
    """Every column of every table, as the database itself returns it."""
    out = []
    with connection.cursor() as cur:
        for table in connection.introspection.table_names():
            cur.execute(f'SELECT * FROM "{table}"')
            out.extend(repr(row) for row in cur.fetchall())
    return "\n".join(out)


def test_the_raw_database_holds_no_secret() -> None:
    cred = _store()
    dump = raw_rows()
    leaks = [name for name, secret in SECRETS.items() if secret in dump or secret[-12:] in dump]
    assert leaks == []
    assert "fernet:" in dump
    # ... and the application reads them back in the clear.
    p = Provider.objects.get(pk=cred.provider_id)
    assert p.headers["Authorization"] == SECRETS["header"] and p.options["oauth"]["client_secret"] == SECRETS["option"]
    c = Credential.objects.get(pk=cred.pk)
    assert (c.api_key, c.access_token, c.extra["private_key"]) == (SECRETS["api_key"], SECRETS["access"],
                                                                    SECRETS["extra"])  # fmt: skip


def test_the_api_and_the_export_mask_them(admin_client: Client) -> None:
    cred = _store()
    bodies = [send(admin_client, "get", f"/providers/{cred.provider_id}").content,
              send(admin_client, "get", f"/credentials/{cred.pk}").content]  # fmt: skip
    out = io.StringIO()
    call_command("export_config", stdout=out)
    for text in [*(b.decode() for b in bodies), out.getvalue()]:
        assert [name for name, secret in SECRETS.items() if secret in text] == []


def test_rotation_re_encrypts_everything_with_the_first_key(settings: Any) -> None:
    old = settings.LLMPROXY_ENCRYPTION_KEYS[0]
    cred = _store()
    before = raw_rows()
    new = Fernet.generate_key().decode()
    with override_settings(LLMPROXY_ENCRYPTION_KEYS=[new, old]):
        assert Credential.objects.get(pk=cred.pk).api_key == SECRETS["api_key"]  # old rows still read
        out = io.StringIO()
        call_command("rotate_encryption_key", stdout=out)
        assert "proxy.Credential: 1 row(s)" in out.getvalue() and "proxy.Provider: 1 row(s)" in out.getvalue()
    after = raw_rows()
    assert after != before and [n for n, s in SECRETS.items() if s in after] == []
    with override_settings(LLMPROXY_ENCRYPTION_KEYS=[new]):  # the old key can go
        c = Credential.objects.select_related("provider").get(pk=cred.pk)
        assert c.refresh_token == SECRETS["refresh"] and c.provider.headers["Authorization"] == SECRETS["header"]
    with override_settings(LLMPROXY_ENCRYPTION_KEYS=[old]), pytest.raises(ValueError, match="cannot be decrypted"):
        Credential.objects.get(pk=cred.pk)


def test_rows_written_before_encryption_read_and_get_encrypted() -> None:
    p = factories.provider("legacy", "https://up.example.com/v1")
    with connection.cursor() as cur:
        cur.execute("UPDATE proxy_provider SET headers = %s WHERE id = %s",
                    [json.dumps({"x-api-key": SECRETS["header"]}), p.pk])  # fmt: skip
    assert Provider.objects.get(pk=p.pk).headers == {"x-api-key": SECRETS["header"]}
    call_command("rotate_encryption_key", stdout=io.StringIO())
    assert SECRETS["header"] not in raw_rows()
    assert Provider.objects.get(pk=p.pk).headers == {"x-api-key": SECRETS["header"]}


def test_error_detail_is_for_staff_only(client: Client, admin_client: Client) -> None:
    alice = factories.user("alice")
    UsageRecord.objects.create(request_id="r1", created_at="2026-01-01T00:00:00Z", user=alice, ingress="openai_chat",
                               status_code=502, error_detail="vault/k HTTP 401: Incorrect API key")  # fmt: skip
    staff = send(admin_client, "get", "/usage").json()["items"]
    assert staff[0]["error_detail"] == "vault/k HTTP 401: Incorrect API key"
    assert "Incorrect API key" in send(admin_client, "get", "/usage/export").getvalue().decode()
    client.force_login(alice)
    own = send(client, "get", "/usage").json()["items"]
    assert own[0]["error_detail"] is None
    assert "Incorrect API key" not in send(client, "get", "/usage/export").getvalue().decode()
