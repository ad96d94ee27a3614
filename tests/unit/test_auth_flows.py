"""Login flow helpers: device code polling rules, PKCE, the loopback callback, pasted codes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from llmproxy.auth import (
    AuthError,
    DeviceCode,
    LoopbackCallback,
    Pkce,
    authorize_url,
    check_callback,
    poll_device_code,
    split_pasted_code,
)


class Polls:
    def __init__(self, *answers: tuple[str, Mapping[str, Any]]) -> None:
        self.answers = list(answers)
        self.sleeps: list[float] = []
        self.t = 0.0

    async def poll(self) -> tuple[str, Mapping[str, Any]]:
        return self.answers.pop(0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def clock(self) -> float:
        return self.t


CODE = DeviceCode("dc", "WDJB-MJHT", "https://github.com/login/device", expires_in=60, interval=5)


def test_device_code_prompt_is_one_line() -> None:
    assert CODE.prompt() == "open https://github.com/login/device and enter WDJB-MJHT"


async def test_device_code_polls_until_approved_and_honours_slow_down() -> None:
    p = Polls(("authorization_pending", {}), ("slow_down", {}), ("authorization_pending", {}),
              ("", {"access_token": "ghu_x"}))  # fmt: skip
    data = await poll_device_code(CODE, p.poll, sleep=p.sleep, clock=p.clock)
    assert data == {"access_token": "ghu_x"}
    assert p.sleeps == [5, 5, 10, 10]


async def test_device_code_takes_the_interval_slow_down_sends() -> None:
    p = Polls(("slow_down", {"interval": 12}), ("", {"ok": 1}))
    await poll_device_code(CODE, p.poll, sleep=p.sleep, clock=p.clock)
    assert p.sleeps == [5, 12]


@pytest.mark.parametrize(("error", "text"), [("access_denied", "declined"), ("expired_token", "expired")])
async def test_device_code_stops_on_denial_and_expiry(error: str, text: str) -> None:
    p = Polls(("authorization_pending", {}), (error, {}))
    with pytest.raises(AuthError, match=text) as info:
        await poll_device_code(CODE, p.poll, sleep=p.sleep, clock=p.clock)
    assert info.value.permanent


async def test_device_code_gives_up_when_its_lifetime_is_over() -> None:
    p = Polls(*[("authorization_pending", {})] * 20)
    with pytest.raises(AuthError, match="expired"):
        await poll_device_code(CODE, p.poll, sleep=p.sleep, clock=p.clock)
    assert len(p.sleeps) == 13  # 60 s / 5 s, then the first poll past the deadline is not sent


def test_pkce_challenge_is_s256_of_the_verifier() -> None:
    pkce = Pkce.new()
    digest = base64.urlsafe_b64encode(hashlib.sha256(pkce.verifier.encode()).digest()).rstrip(b"=").decode()
    assert pkce.challenge == digest
    assert len(pkce.verifier) >= 43
    url = authorize_url("https://claude.ai/oauth/authorize", client_id="c", redirect_uri="http://localhost:1/cb",
                        pkce=pkce, scope="a b", extra={"code": "true"})  # fmt: skip
    assert f"code_challenge={pkce.challenge}" in url and "code_challenge_method=S256" in url
    assert "scope=a+b" in url and "code=true" in url and f"state={pkce.state}" in url


def test_pasted_codes_split_on_the_hash_or_come_from_a_url() -> None:
    assert split_pasted_code(" abc#st \n") == ("abc", "st")
    assert split_pasted_code("abc") == ("abc", None)
    assert split_pasted_code("http://localhost:1/callback?code=c1&state=s1") == ("c1", "s1")
    with pytest.raises(AuthError):
        split_pasted_code("  ")


def test_callback_state_must_match() -> None:
    pkce = Pkce.new()
    assert check_callback({"code": "c", "state": pkce.state}, pkce) == "c"
    with pytest.raises(AuthError, match="state"):
        check_callback({"code": "c", "state": "other"}, pkce)
    with pytest.raises(AuthError, match="access_denied"):
        check_callback({"error": "access_denied"}, pkce)


async def test_loopback_callback_receives_the_redirect() -> None:
    async with LoopbackCallback() as cb:
        assert cb.port > 0
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{cb.port}/elsewhere") as r:
                assert r.status == 404
            async with s.get(f"http://127.0.0.1:{cb.port}/callback?code=abc&state=xyz") as r:
                assert r.status == 200
        assert await cb.wait(timeout=5) == {"code": "abc", "state": "xyz"}


async def test_loopback_callback_times_out_with_a_clear_error() -> None:
    async with LoopbackCallback() as cb:
        with pytest.raises(AuthError, match="no browser callback"):
            await cb.wait(timeout=0.05)
    await asyncio.sleep(0)
