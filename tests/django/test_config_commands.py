"""import_config / check_config / export_config and the apply action behind them."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from proxy.configsync import apply
from proxy.models import ConfigImport, ConfigVersion, Credential, ModelRoute, Provider
from tests import factories

pytestmark = pytest.mark.django_db

CONFIG = """
providers:
  anthropic-main:
    type: claude
    base_url: https://api.anthropic.com
    priority: 10
    cooldown: 60s
    rate_limit: {rpm: 600, tpm: 2000000}
    headers: {anthropic-beta: tools-2024, X-Api-Key: hdr-PLAIN-secret}
    credentials:
      - {name: key-1, api_key: "${TEST_ANTHROPIC_KEY}", weight: 2}
      - {name: key-2, api_key: sk-ant-two}
    models:
      - name: claude-sonnet-4
        upstream: claude-sonnet-4-20250514
        input_price: 3.0
        output_price: 15.0
        cached_input_price: 0.3
        aliases: [sonnet]
  backup:
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    credentials: [{name: k, api_key: sk-backup}]
    models: [claude-sonnet-4]
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-one-secret")


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def snapshot() -> list[tuple[Any, ...]]:
    """Every config row with its updated_at, to prove nothing was written."""
    rows: list[tuple[Any, ...]] = []
    rows += Provider.objects.order_by("name").values_list("name", "updated_at")
    rows += Credential.objects.order_by("provider__name", "name").values_list("provider__name", "name", "updated_at")
    rows += ModelRoute.objects.order_by("provider__name", "name").values_list("provider__name", "name", "upstream")
    return rows


def test_it_imports_providers_credentials_and_routes(tmp_path: Path) -> None:
    record = apply.import_config_file(write(tmp_path, CONFIG))
    assert record.ok and record.errors == []
    p = Provider.objects.get(name="anthropic-main")
    assert (p.type, p.priority, p.cooldown_seconds, p.rpm, p.tpm, p.from_config) == (
        "claude",
        10,
        60.0,
        600,
        2000000,
        True,
    )
    assert p.headers == {"anthropic-beta": "tools-2024", "X-Api-Key": "hdr-PLAIN-secret"}
    k1 = p.credentials.get(name="key-1")
    assert (k1.api_key, k1.weight) == ("sk-ant-one-secret", 2)
    route = p.routes.get(name="claude-sonnet-4")
    assert (route.upstream, route.input_price, route.cached_input_price) == (
        "claude-sonnet-4-20250514",
        Decimal("3"),
        Decimal("0.3"),
    )
    assert p.routes.get(name="sonnet").upstream == "claude-sonnet-4-20250514"
    assert ModelRoute.objects.filter(name="claude-sonnet-4").count() == 2  # one per provider
    assert "provider backup" in record.changes["created"]
    assert len(record.content_hash) == 64


def test_it_changes_nothing_when_the_same_file_is_imported_twice(
    tmp_path: Path, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    path = write(tmp_path, CONFIG)
    with django_capture_on_commit_callbacks(execute=True):
        apply.import_config_file(path)
    version = ConfigVersion.objects.get(pk=1).version
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record = apply.import_config_file(path)
    assert record.ok
    assert (record.changes["created"], record.changes["updated"], record.changes["deleted"]) == ([], [], [])
    assert record.changes["unchanged"] == 2 + 3 + 3
    assert callbacks == []  # no save, so no version bump scheduled
    assert ConfigVersion.objects.get(pk=1).version == version
    assert snapshot() == before


def test_it_bumps_the_version_when_a_value_changes(
    tmp_path: Path, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    apply.import_config_file(write(tmp_path, CONFIG))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        record = apply.import_config_file(write(tmp_path, CONFIG.replace("priority: 10", "priority: 20")))
    assert record.changes["updated"] == ["provider anthropic-main"]
    assert len(callbacks) == 1
    assert Provider.objects.get(name="anthropic-main").priority == 20


def test_it_removes_what_the_file_no_longer_names(tmp_path: Path) -> None:
    apply.import_config_file(write(tmp_path, CONFIG))
    factories.provider("made-in-admin", "http://127.0.0.1:9/v1")
    smaller = CONFIG.split("  backup:")[0].replace("      - {name: key-2, api_key: sk-ant-two}\n", "")
    smaller = smaller.replace("        aliases: [sonnet]\n", "")
    record = apply.import_config_file(write(tmp_path, smaller))
    assert record.ok
    assert sorted(record.changes["deleted"]) == [
        "credential anthropic-main/key-2", "provider backup", "route anthropic-main/sonnet",
    ]  # fmt: skip
    assert set(Provider.objects.values_list("name", flat=True)) == {"anthropic-main", "made-in-admin"}
    assert list(Credential.objects.filter(provider__name="anthropic-main").values_list("name", flat=True)) == ["key-1"]


def test_it_rejects_a_bad_file_whole_and_records_every_error(tmp_path: Path) -> None:
    apply.import_config_file(write(tmp_path, CONFIG))
    before = snapshot()
    bad = CONFIG.replace("type: claude", "type: claud").replace("priority: 10", "priorty: 10")
    bad = bad.replace("input_price: 3.0", "input_price: -3.0")
    record = apply.import_config_file(write(tmp_path, bad))
    assert not record.ok
    assert sorted(e["path"] for e in record.errors) == [
        "providers.anthropic-main.models[0].input_price", "providers.anthropic-main.priorty",
        "providers.anthropic-main.type",
    ]  # fmt: skip
    assert snapshot() == before
    assert ConfigImport.objects.filter(ok=False).count() == 1


def test_it_exports_what_imports_back_without_a_change(tmp_path: Path) -> None:
    apply.import_config_file(write(tmp_path, CONFIG))
    before = snapshot()
    text = apply.export_config()
    assert "sk-ant-one-secret" not in text and "sk-backup" not in text and "hdr-PLAIN-secret" not in text
    assert "X-Api-Key: <redacted>" in text and "anthropic-beta: tools-2024" in text
    record = apply.import_config_text(text, "export")
    assert record.ok, record.errors
    assert (record.changes["created"], record.changes["updated"], record.changes["deleted"]) == ([], [], [])
    assert snapshot() == before
    assert Credential.objects.get(name="key-1").api_key == "sk-ant-one-secret"
    assert Provider.objects.get(name="anthropic-main").headers["X-Api-Key"] == "hdr-PLAIN-secret"

    full = apply.export_config(with_secrets=True)
    assert "sk-ant-one-secret" in full
    record = apply.import_config_text(full, "export")
    assert record.ok and record.changes["updated"] == []
    assert snapshot() == before


def test_it_refuses_a_redacted_secret_it_does_not_have(tmp_path: Path) -> None:
    text = "providers:\n  new:\n    type: openai\n    credentials: [{name: k, api_key: <redacted>}]\n"
    record = apply.import_config_text(text, "api")
    assert not record.ok
    assert record.errors == [
        {"path": "providers.new.credentials[0].api_key", "reason": "is redacted and nothing is stored to keep"}
    ]
    assert not Provider.objects.exists()


def test_it_reads_token_files_and_keeps_tokens_a_refresher_rotated(tmp_path: Path) -> None:
    (tmp_path / "auths").mkdir()
    token = tmp_path / "auths" / "claude-me.json"
    token.write_text(json.dumps({"access_token": "at-1", "refresh_token": "rt-1", "expires_at": 2000000000}))
    path = write(
        tmp_path,
        "providers:\n  c:\n    type: claude\n    auth_type: oauth\n    credentials: [{file: claude-me.json}]\n",
    )
    assert apply.import_config_file(path).ok
    cred = Credential.objects.get(provider__name="c")
    assert (cred.name, cred.file, cred.access_token, cred.refresh_token) == (
        "claude-me",
        "claude-me.json",
        "at-1",
        "rt-1",
    )
    assert cred.expires_at is not None and cred.expires_at.timestamp() == 2000000000
    # A refresher rotates the tokens in the database; the unchanged file must not put them back.
    cred.access_token, cred.refresh_token = "at-2", "rt-2"
    cred.save()
    assert apply.import_config_file(path).changes["updated"] == []
    assert Credential.objects.get(pk=cred.pk).access_token == "at-2"
    # A new login rewrites the file: its tokens win.
    token.write_text(json.dumps({"access_token": "at-3", "refresh_token": "rt-3"}))
    assert apply.sync_token_file(token) == ["c/claude-me"]
    assert Credential.objects.get(pk=cred.pk).access_token == "at-3"
    assert apply.sync_token_file(token) == []


def test_it_warns_and_keeps_secrets_when_a_token_file_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  c:\n    type: claude\n    credentials: [{file: gone.json}]\n")
    record = apply.import_config_file(path)
    assert record.ok
    assert "does not exist" in record.changes["warnings"][0]


def test_import_config_command_prints_a_summary(tmp_path: Path) -> None:
    out, _ = run("import_config", str(write(tmp_path, CONFIG)))
    assert "created provider anthropic-main" in out
    assert out.strip().endswith("8 created, 0 updated, 0 deleted, 0 unchanged.")
    out, _ = run("import_config", str(tmp_path / "config.yaml"))
    assert "0 created, 0 updated, 0 deleted, 8 unchanged." in out


def test_import_config_command_exits_1_listing_every_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "server: {prot: 1}\nproviders:\n  a: {type: claud}\n")
    err = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("import_config", str(bad), stdout=StringIO(), stderr=err)
    assert info.value.returncode == 1
    assert "2 errors" in str(info.value)
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("server.prot: unknown key (did you mean 'port'?)")
    assert lines[1].startswith("providers.a.type: 'claud' is not one of")
    assert not Provider.objects.exists()


def test_check_config_command_validates_without_applying(tmp_path: Path) -> None:
    out, _ = run("check_config", str(write(tmp_path, CONFIG)))
    assert "is valid: 2 providers, 3 model routes" in out
    assert not Provider.objects.exists() and not ConfigImport.objects.exists()
    err = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("check_config", str(write(tmp_path, "logging: {level: loud}\n", "bad.yaml")), stderr=err)
    assert info.value.returncode == 1
    assert err.getvalue().splitlines()[0].startswith("logging.level: 'loud' is not one of")


def test_export_config_command_elides_secrets_unless_asked(tmp_path: Path) -> None:
    run("import_config", str(write(tmp_path, CONFIG)))
    out, _ = run("export_config")
    assert "backup:" in out and "sk-backup" not in out and "api_key: <redacted>" in out
    out, _ = run("export_config", "--with-secrets")
    assert "api_key: sk-backup" in out
