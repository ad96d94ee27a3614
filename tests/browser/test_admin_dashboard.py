"""The admin dashboard in a real browser: its numbers are the database's, the feed is live."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.db.models import Count, Q, Sum
from django.utils import timezone
from playwright.sync_api import Page, expect

from proxy.configsync.demo import add_demo_provider
from proxy.models import UsageRecord
from tests import factories
from tests.browser.conftest import no_horizontal_scroll, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def usage(n: int, **kw: Any) -> None:
    now = timezone.now()
    for i in range(n):
        row = {
            "request_id": uuid.uuid4().hex,
            "created_at": now - timedelta(minutes=5 * i),
            "ingress": "openai_chat",
            "model": "gpt-test",
            "provider": "up",
            "status_code": 200,
            "prompt_tokens": 100 + i,
            "completion_tokens": 20 + i,
            "cost_usd": Decimal("0.0015"),
            "latency_ms": 200 + 10 * i,
            "ttfb_ms": 50,
        }
        row.update(kw)
        UsageRecord.objects.create(**row)


def number(page: Page, metric: str) -> float:
    text = page.locator(f'[data-metric="{metric}"]').first.inner_text()
    return float(re.sub(r"[^0-9.]", "", text) or "nan")


def admin(page: Page, url: str) -> None:
    factories.user("root", staff=True)
    from accounts.models import User

    User.objects.filter(username="root").update(is_superuser=True)
    sign_in(page, url + "/admin/login/?next=/admin/", "root", "pw-root")


def test_it_shows_the_databases_numbers(live: Any, page: Page, shoot: Any) -> None:
    usage(12)
    usage(3, model="claude-test", provider="anth", status_code=502, error_type="upstream_error", cost_usd=None)
    admin(page, live.url)
    expect(page.locator("#llp-dashboard")).to_be_visible()
    db = UsageRecord.objects.aggregate(n=Count("id"), e=Count("id", filter=Q(status_code__gte=400)),
                                       p=Sum("prompt_tokens"), c=Sum("completion_tokens"), cost=Sum("cost_usd"))  # fmt: skip
    assert number(page, "requests") == db["n"] == 15
    assert number(page, "errors") == db["e"] == 3
    assert number(page, "tokens") == db["p"] + db["c"]
    assert number(page, "cost_usd") == pytest.approx(float(db["cost"]))
    for chart in ("requests", "tokens", "cost", "split"):
        expect(page.locator(f"#llp-chart-{chart}")).to_have_attribute("data-ready", "1")
    page.select_option("#llp-split-dim", "provider")
    expect(page.locator("#llp-chart-split")).to_have_attribute("data-ready", "1")
    shoot(page, "admin-dashboard")
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_horizontal_scroll(page) == 0
    page.goto(live.url + "/admin/proxy/usagerecord/")
    shoot(page, "admin-usage-list")


def test_a_request_appears_in_the_live_feed_within_two_seconds(live: Any, page: Page) -> None:
    add_demo_provider()
    _, raw = factories.api_key(factories.user("member"))
    live.reload()
    admin(page, live.url)
    expect(page.locator("#llp-live-status")).to_have_text("connected")
    r = httpx.post(live.url + "/v1/chat/completions", headers={"authorization": f"Bearer {raw}"},
                   json={"model": "demo", "messages": [{"role": "user", "content": "live?"}]})  # fmt: skip
    assert r.status_code == 200
    row = page.locator("#llp-live-body tr", has_text=r.headers["x-request-id"])
    expect(row).to_be_visible(timeout=2000)
    expect(row).to_contain_text("demo")
