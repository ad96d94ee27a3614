"""Provider accounts: credential kinds, token files, refreshers, logins. No Django inside.

What an account type plugs in (``llmproxy.auth.kiro`` does it this way; ``claude``,
``gemini`` and ``copilot`` are listed in the registries directly)::

    from llmproxy import auth

    # 1. its token file schema (fields kept in Credential.extra; required alternatives)
    auth.register_token_type("kiro", auth.TokenType(fields=("auth_method", "region", ...)))
    # 2. a vendor tool's own file for ``login --import`` (return None: not theirs)
    auth.register_importer("kiro", lambda data, path: {...} if "accessToken" in data else None,
                           with_path=True)   # or a one-argument function without with_path
    # 3. its refresher: ``margin`` seconds ahead, ``refresh`` -> TokenSet, AuthError on failure
    auth.register_refresher("kiro", "llmproxy.auth.kiro:KiroRefresher")
    # 4. its login: begin(provider, http, LoginOptions) -> LoginFlow (prompt + complete())
    auth.register_login("kiro", "llmproxy.auth.kiro:begin_login")

Endpoints come from the provider's config (``auth.endpoint(provider, "oidc_url")``,
vendor defaults in ``DEFAULT_ENDPOINTS``), so tests point them at fakes. The gateway
holds one ``TokenKeeper`` per process: ``await keeper.fresh(provider, cred)`` before a
call (waits for one shared refresh when the token is due), ``force=True`` after a 401.

The pieces:

* ``ApiKey`` / ``OAuthTokens`` / ``DeviceAccount``: the credential kinds (``kind_of``);
  ``TokenSet``: fresh tokens (``apply`` to a ``Credential``).
* ``read_token_file`` / ``parse_token_data`` / ``write_token_file`` / ``import_token_file``
  -> ``TokenFile``; ``TokenFileError`` names file and field.
* ``TokenKeeper`` (single-flight + ``StateStore.lock``), ``FileTokenStore`` for hosts
  without Redis.
* ``DeviceCode`` + ``poll_device_code``, ``Pkce`` + ``authorize_url`` +
  ``LoopbackCallback`` + ``split_pasted_code``; ``begin_login`` by type.
* ``write_back``: an ``on_refreshed`` that rewrites the credential's token file
  (``extra["file"]``); ``token_file_for`` builds the file of a credential.
* ``AuthError`` (``permanent`` when only a new login helps); ``USER_AGENT``.
"""

from __future__ import annotations

from .._version import USER_AGENT
from . import kiro  # noqa: F401  (registers the kiro account type)
from ._files import (
    IMPORTERS,
    TOKEN_TYPES,
    TokenFile,
    TokenFileError,
    TokenType,
    import_token_file,
    parse_token_data,
    read_token_file,
    register_importer,
    register_token_type,
    token_file_name,
    write_token_file,
)
from ._filestore import FileTokenStore
from ._flows import (
    LOGINS,
    DeviceCode,
    LoginFlow,
    LoginOptions,
    LoginPrompt,
    LoopbackCallback,
    Pkce,
    authorize_url,
    begin_login,
    challenge_for,
    check_callback,
    poll_device_code,
    register_login,
    split_pasted_code,
)
from ._http import AuthError
from ._keeper import TokenKeeper, TokenStore, credential_key
from ._registry import (
    DEFAULT_ENDPOINTS,
    ENDPOINT_FIELDS,
    REFRESHERS,
    Refresher,
    endpoint,
    refresher_for,
    register_refresher,
)
from ._tokens import ApiKey, DeviceAccount, OAuthTokens, TokenSet, is_account, kind_of, parse_expiry
from ._writeback import token_file_for, write_back

__all__ = [
    "DEFAULT_ENDPOINTS",
    "ENDPOINT_FIELDS",
    "IMPORTERS",
    "LOGINS",
    "REFRESHERS",
    "TOKEN_TYPES",
    "USER_AGENT",
    "ApiKey",
    "AuthError",
    "DeviceAccount",
    "DeviceCode",
    "FileTokenStore",
    "LoginFlow",
    "LoginOptions",
    "LoginPrompt",
    "LoopbackCallback",
    "OAuthTokens",
    "Pkce",
    "Refresher",
    "TokenFile",
    "TokenFileError",
    "TokenKeeper",
    "TokenSet",
    "TokenStore",
    "TokenType",
    "authorize_url",
    "begin_login",
    "challenge_for",
    "check_callback",
    "credential_key",
    "endpoint",
    "import_token_file",
    "is_account",
    "kind_of",
    "parse_expiry",
    "parse_token_data",
    "poll_device_code",
    "read_token_file",
    "refresher_for",
    "register_importer",
    "register_login",
    "register_refresher",
    "register_token_type",
    "split_pasted_code",
    "token_file_for",
    "token_file_name",
    "write_back",
    "write_token_file",
]
