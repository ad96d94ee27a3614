"""TokenKeeper: a token due for refresh is refreshed once, however many callers and processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmproxy.auth import AuthError, FileTokenStore, TokenKeeper, TokenSet, register_refresher
from llmproxy.auth._registry import REFRESHERS, _instances
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.state import MemoryStateStore


class CountingRefresher:
    margin = 60.0
    calls = 0
    fail: AuthError | None = None

    async def refresh(self, provider: ProviderConfig, cred: Credential, http: HTTPClient) -> TokenSet:
        type(self).calls += 1
        await asyncio.sleep(0.05)  # long enough for every concurrent caller to pile up
        err = type(self).fail
        if err is not None:
            raise err
        n = type(self).calls
        return TokenSet(f"access-{n}", time.time() + 3600, refresh_token=f"refresh-{n}", extra={"n": n})


@pytest.fixture(autouse=True)
def refresher() -> Iterator[type[CountingRefresher]]:
    CountingRefresher.calls, CountingRefresher.fail = 0, None
    register_refresher("testacct", CountingRefresher)
    yield CountingRefresher
    REFRESHERS.pop("testacct", None)
    _instances.pop("testacct", None)


PROVIDER = ProviderConfig(name="acct", type="testacct")


def cred(expires_in: float) -> Credential:
    return Credential("me", "acct", access_token="access-0", refresh_token="refresh-0",
                      expires_at=time.time() + expires_in)  # fmt: skip


async def test_keeper_leaves_a_fresh_token_alone() -> None:
    keeper = TokenKeeper(MemoryStateStore(), HTTPClient())
    c = cred(3600)
    assert await keeper.fresh(PROVIDER, c) is c
    assert CountingRefresher.calls == 0


async def test_keeper_refreshes_a_due_token_once_for_concurrent_callers() -> None:
    saved: list[Credential] = []

    async def save(p: ProviderConfig, c: Credential, t: TokenSet) -> None:
        saved.append(c)

    keeper = TokenKeeper(MemoryStateStore(), HTTPClient(), on_refreshed=save)
    results = await asyncio.gather(*(keeper.fresh(PROVIDER, cred(30)) for _ in range(20)))
    assert CountingRefresher.calls == 1
    assert {r.access_token for r in results} == {"access-1"}
    assert results[0].refresh_token == "refresh-1"  # a rotated refresh token is kept
    assert results[0].extra == {"n": 1}
    assert len(saved) == 1
    # the next call serves the refreshed token without refreshing again, even from the old snapshot
    again = await keeper.fresh(PROVIDER, cred(30))
    assert again.access_token == "access-1"
    assert CountingRefresher.calls == 1


async def test_keeper_refreshes_once_across_processes_sharing_a_store() -> None:
    store = MemoryStateStore()
    keepers = [TokenKeeper(store, HTTPClient()) for _ in range(4)]  # four "processes"
    results = await asyncio.gather(*(k.fresh(PROVIDER, cred(-5)) for k in keepers for _ in range(5)))
    assert CountingRefresher.calls == 1
    assert {r.access_token for r in results} == {"access-1"}


async def test_keeper_refreshes_once_across_processes_sharing_files(tmp_path: Path) -> None:
    keepers = [TokenKeeper(FileTokenStore(tmp_path), HTTPClient()) for _ in range(3)]
    results = await asyncio.gather(*(k.fresh(PROVIDER, cred(10)) for k in keepers))
    assert CountingRefresher.calls == 1
    assert {r.access_token for r in results} == {"access-1"}


async def test_keeper_force_replaces_a_refused_token_even_when_not_due() -> None:
    keeper = TokenKeeper(MemoryStateStore(), HTTPClient())
    c = cred(3600)
    new = await keeper.fresh(PROVIDER, c, force=True)
    assert new.access_token == "access-1"
    assert CountingRefresher.calls == 1


async def test_keeper_failure_reaches_every_waiter_and_the_callback() -> None:
    CountingRefresher.fail = AuthError("invalid_grant: refresh token revoked", permanent=True)
    failed: list[str] = []

    async def on_failed(p: ProviderConfig, c: Credential, err: AuthError) -> None:
        failed.append(f"{p.name}/{c.name}: {err.message}")

    keeper = TokenKeeper(MemoryStateStore(), HTTPClient(), on_failed=on_failed)
    results = await asyncio.gather(*(keeper.fresh(PROVIDER, cred(0)) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, AuthError) and r.permanent for r in results)
    assert failed == ["acct/me: invalid_grant: refresh token revoked"]
    assert CountingRefresher.calls == 1


async def test_keeper_leaves_credentials_without_a_refresher_alone() -> None:
    keeper = TokenKeeper(MemoryStateStore(), HTTPClient())
    c = Credential("k", "p", api_key="sk-1")
    assert await keeper.fresh(ProviderConfig(name="p", type="openai"), c, force=True) is c


async def test_keeper_ignores_published_tokens_older_than_a_new_login() -> None:
    store = MemoryStateStore()
    before = TokenKeeper(store, HTTPClient())
    await before.fresh(PROVIDER, cred(-5))  # publishes access-1 (an hour) under acct/me
    assert CountingRefresher.calls == 1
    relogin = Credential("me", "acct", access_token="login-2", refresh_token="login-refresh-2",
                         expires_at=time.time() + 7200)  # fmt: skip
    after = TokenKeeper(store, HTTPClient())  # another process, after the credential logged in again
    renewed = await after.fresh(PROVIDER, relogin, force=True)  # the upstream refused login-2
    assert CountingRefresher.calls == 2  # refreshed from the new login, not handed the old access-1
    assert (renewed.access_token, renewed.refresh_token) == ("access-2", "refresh-2")


async def test_keeper_takes_a_refresh_of_its_own_grant_even_when_its_expiry_looked_later() -> None:
    store = MemoryStateStore()
    # the token file claimed 8 h; the tokens live 1 h
    optimistic = Credential(
        "me", "acct", access_token="access-0", refresh_token="refresh-0", expires_at=time.time() + 8 * 3600
    )
    await TokenKeeper(store, HTTPClient()).fresh(PROVIDER, optimistic, force=True)  # publishes access-1, 1 h
    renewed = await TokenKeeper(store, HTTPClient()).fresh(PROVIDER, optimistic, force=True)
    assert CountingRefresher.calls == 1  # the other process's refresh of refresh-0 is taken, not spent again
    assert (renewed.access_token, renewed.refresh_token) == ("access-1", "refresh-1")
