"""Token files: llmproxy's own JSON format in the auth dir, read strictly, written atomically.

One JSON object per file (INTERFACE.md section 8)::

    {"type": "claude", "provider": "claude-max", "access_token": "...",
     "refresh_token": "...", "expires_at": "2026-01-01T00:00:00Z", "email": "me@x"}

``read_token_file`` validates against the type's ``TokenType`` and raises
``TokenFileError`` naming the file and the field. ``write_token_file`` writes a temp
file (mode 0600) beside the target and renames it over, so a reader never sees half a
file. Vendor tools' own files (gemini-cli's ``oauth_creds.json``, ...) are turned into
this format by an importer registered per type (``register_importer``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._tokens import iso, parse_expiry


class TokenFileError(ValueError):
    """A token file that cannot be used; ``path`` and ``field`` say where."""

    def __init__(self, path: str, field: str, reason: str) -> None:
        self.path, self.field, self.reason = path, field, reason
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class TokenType:
    """What a token file of one account type must and may hold.

    ``required``: alternatives, each a tuple of fields that must all be present (one
    alternative suffices). ``account_field``: the file field that carries the long-lived
    account token (copilot: ``github_token``), kept in the credential's ``refresh_token``.
    ``fields``: further type-specific fields, kept in the credential's ``extra``.
    ``check``: extra validation returning (field, reason) problems.
    """

    required: tuple[tuple[str, ...], ...] = (("access_token",), ("refresh_token",))
    account_field: str | None = None
    fields: tuple[str, ...] = ()
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] | None = None


TOKEN_TYPES: dict[str, TokenType] = {
    "copilot": TokenType(required=(("github_token",),), account_field="github_token"),
    "claude": TokenType(fields=("email",)),
    "gemini": TokenType(fields=("project_id", "email")),
}

_COMMON = ("type", "provider", "access_token", "refresh_token", "expires_at")


def register_token_type(name: str, spec: TokenType) -> None:
    """Declare (or replace) the token file schema of an account type."""
    TOKEN_TYPES[name] = spec


@dataclass(frozen=True, slots=True)
class TokenFile:
    """One parsed token file; ``credential_fields`` maps it onto a stored credential."""

    type: str
    path: str = ""
    provider: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def credential_fields(self) -> dict[str, Any]:
        """``access_token``, ``refresh_token``, ``expires_at`` (unix) and ``extra`` of the credential."""
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "expires_at": self.expires_at, "extra": dict(self.extra)}  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        spec = TOKEN_TYPES.get(self.type, TokenType())
        out: dict[str, Any] = {"type": self.type}
        if self.provider:
            out["provider"] = self.provider
        if spec.account_field:
            out[spec.account_field] = self.refresh_token
        elif self.refresh_token:
            out["refresh_token"] = self.refresh_token
        if self.access_token:
            out["access_token"] = self.access_token
        if self.expires_at is not None:
            out["expires_at"] = iso(self.expires_at)
        out.update({k: v for k, v in self.extra.items() if v is not None})
        return out


def parse_token_data(data: Any, path: str = "<token file>") -> TokenFile:
    """Validate a decoded token file; every problem -> ``TokenFileError`` (the first found)."""
    if not isinstance(data, dict):
        raise TokenFileError(path, "", "is not a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise TokenFileError(path, "type", f"is required (one of {', '.join(sorted(TOKEN_TYPES))})")
    spec = TOKEN_TYPES.get(kind)
    if spec is None:
        raise TokenFileError(path, "type", f"unknown account type {kind!r}; known: {', '.join(sorted(TOKEN_TYPES))}")
    known = {*_COMMON, *spec.fields, *([spec.account_field] if spec.account_field else [])}
    for name in known - {"expires_at"}:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise TokenFileError(path, name, "must be a string")
    if not any(all(data.get(f) for f in alt) for alt in spec.required):
        wanted = " or ".join(" and ".join(alt) for alt in spec.required)
        raise TokenFileError(path, spec.required[0][0], f"is required ({kind} files need {wanted})")
    try:
        expires = parse_expiry(data.get("expires_at"))
    except ValueError as exc:
        raise TokenFileError(path, "expires_at", str(exc)) from None
    for fname, reason in spec.check(data) if spec.check else []:
        raise TokenFileError(path, fname, reason)
    refresh = data.get(spec.account_field) if spec.account_field else data.get("refresh_token")
    extra = {k: data[k] for k in spec.fields if data.get(k) is not None}
    return TokenFile(kind, path, data.get("provider") or None, data.get("access_token") or None,
                     refresh or None, expires, extra)  # fmt: skip


def read_token_file(path: str | Path) -> TokenFile:
    """Read and validate one token file (llmproxy's format)."""
    p = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(p, "", f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TokenFileError(p, "", f"is not valid JSON ({exc})") from None
    return parse_token_data(data, p)


def token_file_name(provider_type: str, credential: str) -> str:
    return f"{provider_type}-{credential}.json"


def write_token_file(path: str | Path, token: TokenFile) -> Path:
    """Write ``token`` to ``path`` atomically (temp file in the same dir, mode 0600, rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(token.to_json(), fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


Importer = Callable[[Mapping[str, Any]], dict[str, Any] | None]
#: An importer that also gets the file's path (a vendor tool that keeps part of an
#: account in a file beside it: Kiro IDE's client registration).
PathImporter = Callable[[Mapping[str, Any], Path], dict[str, Any] | None]
#: account type -> converters from a vendor tool's token file to llmproxy's format
#: (return None when the data is not theirs), each called with the data and the path.
IMPORTERS: dict[str, list[PathImporter]] = {}


def register_importer(provider_type: str, importer: Importer | PathImporter, *, with_path: bool = False) -> None:
    """Add a converter; ``with_path``: it takes the file's path as a second argument."""
    if with_path:
        IMPORTERS.setdefault(provider_type, []).append(importer)  # type: ignore[arg-type]
        return
    plain: Importer = importer  # type: ignore[assignment]
    IMPORTERS.setdefault(provider_type, []).append(lambda data, _path: plain(data))


def import_token_file(path: str | Path, provider_type: str) -> TokenFile:
    """A token file in llmproxy's format, or a vendor tool's one known for ``provider_type``."""
    p = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TokenFileError(p, "", f"cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise TokenFileError(p, "", f"is not valid JSON ({exc})") from None
    if isinstance(data, dict) and "type" not in data:
        for importer in IMPORTERS.get(provider_type, []):
            converted = importer(data, Path(path))
            if converted is not None:
                data = {"type": provider_type, **converted}
                break
    token = parse_token_data(data, p)
    if token.type != provider_type:
        raise TokenFileError(p, "type", f"is {token.type!r}, not {provider_type!r}")
    return token


def _gemini_cli(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """gemini-cli's ``~/.gemini/oauth_creds.json``: ``expiry_date`` in milliseconds."""
    if "refresh_token" not in data and "access_token" not in data:
        return None
    out = {k: data[k] for k in ("access_token", "refresh_token") if data.get(k)}
    if data.get("expiry_date") is not None:
        out["expires_at"] = data["expiry_date"]
    return out


register_importer("gemini", _gemini_cli)
