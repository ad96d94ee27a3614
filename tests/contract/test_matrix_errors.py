"""The contract matrix's failures: upstream error statuses and broken streams, per (client, upstream).

No failover is configured (one provider, one credential), so the client sees the
upstream's failure, rendered in its own dialect: its SDK must raise the exception class
it raises for that status against the real API.
"""

from __future__ import annotations

import pytest

from tests.contract.conftest import ACCOUNT_PAIRS, PAIRS, Ask, Pair

pytestmark = pytest.mark.parametrize("pair", PAIRS + ACCOUNT_PAIRS, indirect=True)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_it_answers_an_upstream_429_with_the_clients_rate_limit_error(pair: Pair, stream: bool) -> None:
    pair.script(pair.upstream.error(429, retry_after="7"))
    with pytest.raises(pair.client.rate_limited) as exc:
        pair.client.ask(Ask(stream=stream))
    assert pair.client.status(exc.value) == 429
    assert pair.client.retry_after(exc.value) == "7"
    assert len(pair.fake.requests) == 1
    rec = pair.record()
    assert (rec.status_code, rec.provider) == (429, "up-" + pair.upstream.name)


# With nothing to fail over to, the gateway answers 503 "every upstream is failing" or the
# upstream's own 502; an overloaded upstream (Anthropic's 529) is 503 to every client.
@pytest.mark.parametrize(("upstream_status", "statuses"), [(500, (502, 503)), (529, (503,))])
def test_it_answers_an_upstream_server_error_with_the_clients_server_error(
    pair: Pair, upstream_status: int, statuses: tuple[int, ...]
) -> None:
    pair.script(pair.upstream.error(upstream_status))
    with pytest.raises(pair.client.server_error) as exc:
        pair.client.ask(Ask())
    assert pair.client.status(exc.value) in statuses
    assert "sk-upstream-secret" not in str(exc.value)
    assert pair.record().status_code in statuses


def test_it_reports_a_mid_stream_upstream_error_in_the_clients_dialect(pair: Pair) -> None:
    pair.script(pair.upstream.broken_stream())
    with pytest.raises(pair.client.stream_error):
        pair.client.ask(Ask(stream=True))
    assert pair.record().status_code >= 500
