"""``TokenKeeper``: fresh tokens for every request, one refresh per credential at a time.

    keeper = TokenKeeper(store, http, on_refreshed=save, on_failed=mark_unhealthy)
    cred = await keeper.fresh(provider, cred)              # before a call
    cred = await keeper.fresh(provider, cred, force=True)  # after an upstream 401

``fresh`` returns the credential unchanged while its token is good for longer than the
refresher's ``margin``. Otherwise concurrent callers in this process share one refresh
(single-flight), and across processes the store's lock (``StateStore.lock``) lets one
of them refresh while the others wait for the tokens it publishes in the store
(``tok:<provider>/<credential>``, kept until the token expires). Redis makes that span
machines; ``MemoryStateStore`` spans one process, so a deployment without Redis passes a
``FileTokenStore`` (flock on local files) to span the processes of one host.

A failed refresh raises ``AuthError`` after calling ``on_failed``; ``on_refreshed`` is
where the caller saves the new tokens (database, token file) and bumps the config version.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..errors import ProviderHTTPError
from ..http import HTTPClient
from ..providers.base import Credential, ProviderConfig
from ..state import StateStore, StoreError
from ._http import AuthError
from ._registry import refresher_for
from ._tokens import TokenSet, is_account

log = logging.getLogger("llmproxy.auth")

OnRefreshed = Callable[[ProviderConfig, Credential, TokenSet], Awaitable[None]]
OnFailed = Callable[[ProviderConfig, Credential, AuthError], Awaitable[None]]


class TokenStore(Protocol):
    """Where processes share a lease and the latest tokens: a ``StateStore`` is one."""

    async def get(self, key: str) -> str | None: ...
    async def put(self, key: str, value: str, ttl: float) -> None: ...
    async def lock(self, key: str, owner: str, ttl: float) -> bool: ...
    async def unlock(self, key: str, owner: str) -> None: ...


def credential_key(provider: ProviderConfig, cred: Credential) -> str:
    return f"{provider.name}/{cred.name}"


class TokenKeeper:
    def __init__(
        self,
        store: TokenStore | StateStore,
        http: HTTPClient,
        *,
        on_refreshed: OnRefreshed | None = None,
        on_failed: OnFailed | None = None,
        clock: Callable[[], float] = time.time,
        lock_ttl: float = 30.0,
        wait: float = 30.0,
    ) -> None:
        self.store = store
        self.http = http
        self.on_refreshed = on_refreshed
        self.on_failed = on_failed
        self.clock = clock
        self.lock_ttl = lock_ttl
        self.wait = wait
        self._latest: dict[str, Credential] = {}
        self._inflight: dict[str, asyncio.Future[Credential]] = {}

    def manages(self, provider: ProviderConfig, cred: Credential) -> bool:
        return is_account(cred) and refresher_for(provider.type) is not None

    async def fresh(self, provider: ProviderConfig, cred: Credential, *, force: bool = False) -> Credential:
        """``cred`` with a token good for longer than the margin (refreshed if need be)."""
        refresher = refresher_for(provider.type)
        if refresher is None or not is_account(cred):
            return cred
        key = credential_key(provider, cred)
        cur = _newest(cred, self._latest.get(key))
        if not force and not self._due(cur, refresher.margin):
            return cur
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight[key] = fut
            try:
                fut.set_result(await self._refresh(provider, cur, key, refresher.margin, force))
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # retrieved: a future nobody else awaited must not warn
                raise
            finally:
                self._inflight.pop(key, None)
        return await asyncio.shield(fut)

    async def for_call(self, provider: ProviderConfig, cred: Credential) -> Credential:
        """``fresh`` for the gateway: a failed refresh is an auth failure of this candidate."""
        try:
            return await self.fresh(provider, cred)
        except AuthError as exc:
            raise _refused(provider, cred, exc.message) from None

    async def after_refusal(self, provider: ProviderConfig, cred: Credential, reason: str) -> Credential | None:
        """After an upstream refused ``cred``'s token: one forced refresh, or None when it has none.

        The caller retries once with what this returns; when that is refused too it calls
        ``refused_again``, which marks the credential unhealthy through ``on_failed``.
        """
        if not self.manages(provider, cred):
            return None
        try:
            return await self.fresh(provider, cred, force=True)
        except AuthError as exc:
            raise _refused(provider, cred, exc.message) from None

    async def refused_again(self, provider: ProviderConfig, cred: Credential, reason: str) -> None:
        if self.on_failed is not None:
            message = f"the upstream refused the refreshed token too: {reason}"
            await self.on_failed(provider, cred, AuthError(message, permanent=True, code="refused"))

    def _due(self, cred: Credential, margin: float) -> bool:
        if not cred.access_token:
            return True
        return cred.expires_at is not None and cred.expires_at - self.clock() <= margin

    async def _published(self, key: str, cred: Credential, stale: str | None, margin: float) -> Credential | None:
        """Tokens another process published for ``key``: newer than ``stale``, not due, not an earlier login's."""
        raw = await self.store.get("tok:" + key)
        if not raw:
            return None
        data = json.loads(raw)
        tokens = TokenSet(
            data["access_token"], data.get("expires_at"), data.get("refresh_token"), data.get("extra") or {}
        )
        if tokens.access_token == stale:
            return None
        older = tokens.expires_at is not None and cred.expires_at is not None and tokens.expires_at <= cred.expires_at
        if older and not _same_grant(data, cred):
            return None  # an earlier login's tokens (older, from another refresh token), not a refresh of these
        out = tokens.apply(cred)
        return None if self._due(out, margin) else out

    async def _refresh(self, provider: ProviderConfig, cred: Credential, key: str, margin: float,
                       force: bool) -> Credential:  # fmt: skip
        stale = cred.access_token if force else None
        owner = uuid.uuid4().hex
        deadline = self.clock() + self.wait
        while True:
            try:
                found = await self._published(key, cred, stale, margin)
                if found is not None:
                    self._latest[key] = found
                    return found
                locked = await self.store.lock("refresh:" + key, owner, self.lock_ttl)
            except StoreError as exc:  # fail open: refresh here rather than refuse traffic
                log.warning("token store unavailable for %s (%s); refreshing without the lock", key, exc)
                return await self._run(provider, cred, key, owner, locked=False)
            if locked:
                return await self._run(provider, cred, key, owner, locked=True)
            if self.clock() > deadline:
                raise AuthError(f"credential {key}: timed out waiting for another process's token refresh")
            await asyncio.sleep(0.05)

    async def _run(
        self, provider: ProviderConfig, cred: Credential, key: str, owner: str, *, locked: bool
    ) -> Credential:
        refresher = refresher_for(provider.type)
        assert refresher is not None
        try:
            try:
                tokens = await refresher.refresh(provider, cred, self.http)
            except AuthError as exc:
                log.warning("token refresh failed for credential %s: %s", key, exc.message)
                if self.on_failed is not None:
                    await self.on_failed(provider, cred, exc)
                raise
            new = tokens.apply(cred)
            self._latest[key] = new
            ttl = (new.expires_at - self.clock()) if new.expires_at is not None else 3600.0
            payload = {"access_token": tokens.access_token, "expires_at": tokens.expires_at,
                       "refresh_token": new.refresh_token, "extra": dict(tokens.extra),
                       "from": _digest(cred.refresh_token)}  # fmt: skip
            try:
                await self.store.put("tok:" + key, json.dumps(payload), max(1.0, ttl))
            except StoreError as exc:
                log.warning("could not publish refreshed tokens of %s: %s", key, exc)
            if self.on_refreshed is not None:
                await self.on_refreshed(provider, new, tokens)
            log.info("refreshed the token of credential %s", key)
            return new
        finally:
            if locked:
                try:
                    await self.store.unlock("refresh:" + key, owner)
                except StoreError:
                    pass  # the lease ends by itself


def _digest(token: str | None) -> str:
    """What a published token set says about the refresh token it came from (not the token itself)."""
    return hashlib.sha256((token or "").encode()).hexdigest()[:24]


def _same_grant(data: dict[str, Any], cred: Credential) -> bool:
    """Whether published tokens continue ``cred``'s grant: refreshed from its refresh token, or carrying it."""
    if not cred.refresh_token or "from" not in data:
        return True
    return data["from"] == _digest(cred.refresh_token) or data.get("refresh_token") == cred.refresh_token


def _refused(provider: ProviderConfig, cred: Credential, message: str) -> ProviderHTTPError:
    """An account whose token cannot be renewed: this credential's auth failure (the call fails over)."""
    return ProviderHTTPError(f"{provider.name}: credential {cred.name}: token refresh failed: {message}",
                             upstream_status=401, provider=provider.name, retryable=True)  # fmt: skip


def _newest(a: Credential, b: Credential | None) -> Credential:
    """The credential whose token lives longer (a snapshot may lag behind a refresh)."""
    if b is None or b.access_token == a.access_token:
        return a
    if (b.expires_at or 0) > (a.expires_at or 0):
        return b
    return a
