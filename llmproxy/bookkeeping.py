"""What a call leaves behind: its usage record, its spend against limits, routing's verdict.

``Books`` is the public bookkeeping the gateway, the stream relay and the side endpoints
share: ``settle`` prices the usage and charges it to the limits, ``record`` hands the one
``UsageEvent`` of a call to the sink, ``fail`` answers an error in the client's dialect
(and records it), ``after_failure`` tells routing what an upstream failure means.
Background work (limits, cooldowns, token refresh) runs in tasks it keeps alive.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from . import disclosure
from ._json import dumps
from .errors import LLMProxyError, ProviderError
from .exchange import CONTENT_JSON, Exchange, Reply
from .limits import Limiter
from .model import Usage
from .outcome import Outcome, classify
from .providers.base import Credential
from .routing import Candidate, Plan, Router
from .usage import UsageSink

log = logging.getLogger("llmproxy.gateway")


class Books:
    def __init__(
        self,
        router: Router,
        limiter: Limiter,
        usage_sink: UsageSink,
        refresher: Callable[[Credential], Awaitable[None]] | None = None,
    ) -> None:
        self.router = router
        self.limiter = limiter
        self.usage_sink = usage_sink
        self.refresher = refresher
        self._tasks: set[asyncio.Task[None]] = set()

    def fail(self, ex: Exchange, err: LLMProxyError) -> Reply:
        """The error reply in the client's dialect (what section 11 lets it see); recorded with the detail."""
        shown = self.disclose(ex, err)
        status, body = ex.codec.error_body(shown)
        headers = {"content-type": CONTENT_JSON}
        if err.retry_after is not None:
            headers["retry-after"] = str(max(1, int(-(-err.retry_after // 1))))
        if ex.event.attempts:
            headers["x-llmproxy-provider"] = ex.event.provider
            headers["x-llmproxy-attempts"] = str(ex.event.attempts)
        ex.event.status_code, ex.event.error_type = status, err.code
        self.record(ex)
        return Reply(status, dumps(body), headers)

    @staticmethod
    def disclose(ex: Exchange, err: LLMProxyError) -> LLMProxyError:
        """``err`` as the client may see it; the upstream's own account goes to ``error_detail``."""
        scrubber = ex.runtime.scrubber
        if isinstance(err, ProviderError):
            ex.note_failure(err)
        if ex.failures:
            ex.event.error_detail = disclosure.joined(ex.failures, scrubber)
        return disclosure.for_client(err, ex.request.model if ex.request else None, scrubber)

    def record(self, ex: Exchange, ttfb: float | None = None) -> None:
        """Close the call's usage event (latency, time to first byte) and hand it to the sink."""
        ev = ex.event
        ev.latency_ms = int((time.monotonic() - ex.started) * 1000)
        if ttfb is not None:
            ev.ttfb_ms = int((ttfb - ex.started) * 1000)
        if ex.reservation is not None:
            self._end_reservation(ex)
        try:
            self.usage_sink(ev)
        except Exception:
            log.exception("usage sink failed for %s", ev.request_id)

    def _end_reservation(self, ex: Exchange) -> None:
        """Settle the call's hold to what it cost, or release it when nothing was used.

        A client that hangs up mid-stream before the upstream's usage arrived is charged
        the hold itself (the upper bound of what the upstream will bill), and its record
        says so: the spend counter and the usage records stay equal."""
        res, ev = ex.reservation, ex.event
        assert res is not None
        ex.reservation = None
        if ev.usage is None and ev.status_code == 499 and ex.candidate is not None and res.hold is not None:
            if res.hold.cost > 0:
                ev.cost_usd = res.hold.cost
            self.spawn(self.limiter.settle(res, tokens=res.hold.tokens, cost=ev.cost_usd))
        elif ev.usage is None:
            self.spawn(self.limiter.release(res))
        else:
            tokens = ev.usage.input_tokens + ev.usage.output_tokens
            self.spawn(self.limiter.settle(res, tokens=tokens, cost=ev.cost_usd))

    @staticmethod
    def estimated(ex: Exchange, usage: Usage) -> Usage:
        """``usage`` with the gateway's own prompt count where the upstream gave none (Kiro
        without a contextUsageEvent, a stream that ended without usage), marked ``estimated``:
        a prompt of 0 tokens would make the call free and invisible to TPM."""
        if usage.input_tokens or ex.request is None:
            return usage
        return dataclasses.replace(usage, input_tokens=ex.counted_prompt(), estimated=True)

    def settle(self, ex: Exchange, usage: Usage | None, status: int = 200, error: str = "") -> None:
        """The outcome of the current attempt: status, usage and cost; spend charged in the background."""
        ev = ex.event
        ev.status_code, ev.error_type = status, error
        cand = ex.candidate
        if usage is None or cand is None:
            return
        usage = self.estimated(ex, usage)
        ev.usage = usage
        price = cand.route.price
        if price is not None:
            ev.cost_usd = price.cost(
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_tokens,
                usage.cache_write_tokens,
                usage.cache_write_1h_tokens,
            )
        if ex.plan is not None:
            self.spawn(self._charge(ex, ex.plan, cand, usage.input_tokens + usage.output_tokens, ev.cost_usd))

    async def _charge(self, ex: Exchange, plan: Plan, cand: Candidate, tokens: int, cost: float | None) -> None:
        await self.router.settle(plan, cand, tokens)

    async def after_failure(self, plan: Plan, cand: Candidate, err: ProviderError) -> Outcome:
        """Cool the candidate as the failure deserves; ask for a token refresh on an auth refusal."""
        outcome = classify(err, cand.route.provider, plan.settings)
        await self.router.fail(plan, cand, outcome)
        log.info("attempt on %s failed: %s (%s)", cand.key, err.message, outcome.reason)
        if outcome.refresh and self.refresher is not None and cand.credential.refresh_token:
            self.spawn(self.refresher(cand.credential))
        return outcome

    def spawn(self, coro: Awaitable[object]) -> None:
        """Run bookkeeping in the background, keeping a reference until it is done."""

        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("background routing bookkeeping failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait until the background bookkeeping started so far is done (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
