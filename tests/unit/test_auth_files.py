"""Token files: strict reading with errors naming file and field, atomic 0600 writes, imports."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from llmproxy.auth import (
    TokenFile,
    TokenFileError,
    import_token_file,
    parse_expiry,
    read_token_file,
    token_file_name,
    write_token_file,
)


def write(tmp_path: Path, name: str, data: object) -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_token_file_reads_a_claude_file(tmp_path: Path) -> None:
    p = write(tmp_path, "claude-me.json", {"type": "claude", "access_token": "sk-ant-oat01-a",
                                           "refresh_token": "sk-ant-ort01-b", "expires_at": "2030-01-01T00:00:00Z",
                                           "email": "me@example.com", "provider": "claude-max"})  # fmt: skip
    tf = read_token_file(p)
    assert (tf.type, tf.provider, tf.access_token, tf.refresh_token) == ("claude", "claude-max", "sk-ant-oat01-a",
                                                                         "sk-ant-ort01-b")  # fmt: skip
    assert tf.expires_at == 1893456000.0
    assert tf.extra == {"email": "me@example.com"}


def test_token_file_keeps_the_github_token_of_copilot_as_the_refresh_token(tmp_path: Path) -> None:
    tf = read_token_file(write(tmp_path, "copilot-me.json", {"type": "copilot", "github_token": "ghu_x"}))
    assert tf.refresh_token == "ghu_x"
    assert tf.access_token is None
    assert tf.to_json() == {"type": "copilot", "github_token": "ghu_x"}


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ("{not json", "", "is not valid JSON"),
        ("[1]", "", "is not a JSON object"),
        ({"access_token": "a"}, "type", "is required"),
        ({"type": "nope", "access_token": "a"}, "type", "unknown account type 'nope'"),
        ({"type": "copilot", "access_token": "a"}, "github_token", "is required"),
        ({"type": "claude"}, "access_token", "is required"),
        ({"type": "claude", "access_token": 5}, "access_token", "must be a string"),
        ({"type": "gemini", "refresh_token": "r", "expires_at": "soon"}, "expires_at", "neither ISO 8601"),
    ],
)
def test_token_file_errors_name_the_file_and_the_field(tmp_path: Path, data: object, field: str, reason: str) -> None:
    p = write(tmp_path, "bad.json", data)
    with pytest.raises(TokenFileError) as info:
        read_token_file(p)
    assert info.value.field == field
    assert info.value.path == str(p)
    assert reason in str(info.value)
    assert str(p) in str(info.value)


def test_token_file_write_is_atomic_and_private(tmp_path: Path) -> None:
    target = tmp_path / "auths" / token_file_name("gemini", "me")
    assert target.name == "gemini-me.json"
    tf = TokenFile("gemini", access_token="ya29.a", refresh_token="1//r", expires_at=1893456000.0,
                   extra={"project_id": "proud-lamp"})  # fmt: skip
    write_token_file(target, tf)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["gemini-me.json"]  # no temp file left behind
    again = read_token_file(target)
    assert again.credential_fields() == tf.credential_fields()
    write_token_file(target, TokenFile("gemini", access_token="ya29.b", refresh_token="1//r"))
    assert read_token_file(target).access_token == "ya29.b"


def test_token_file_import_reads_gemini_cli_oauth_creds(tmp_path: Path) -> None:
    p = write(tmp_path, "oauth_creds.json", {"access_token": "ya29.x", "refresh_token": "1//y", "scope": "s",
                                             "token_type": "Bearer", "expiry_date": 1893456000123})  # fmt: skip
    tf = import_token_file(p, "gemini")
    assert (tf.type, tf.access_token, tf.refresh_token) == ("gemini", "ya29.x", "1//y")
    assert tf.expires_at == pytest.approx(1893456000.123)


def test_token_file_import_refuses_another_type(tmp_path: Path) -> None:
    p = write(tmp_path, "x.json", {"type": "claude", "access_token": "a"})
    with pytest.raises(TokenFileError, match="is 'claude', not 'gemini'"):
        import_token_file(p, "gemini")


def test_parse_expiry_takes_iso_unix_seconds_and_milliseconds() -> None:
    assert parse_expiry("2030-01-01T00:00:00") == 1893456000.0
    assert parse_expiry("1893456000") == 1893456000.0
    assert parse_expiry(1893456000000) == 1893456000.0
    assert parse_expiry(None) is None
