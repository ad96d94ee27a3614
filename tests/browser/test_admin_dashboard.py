"""The admin dashboard in a real browser: its numbers are the database's, the feed is live,
credentials' health with cooldowns that can be tested and cleared; the admin lists fit a laptop."""

from __future__ import annotations

import re
import time
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
from proxy.models import Credential, UsageRecord
from tests import factories
from tests.browser.conftest import WIDTHS, box_overflow, no_horizontal_scroll, resize, sign_in

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
    assert number(page, "p50_ms") > 0 and number(page, "ttfb_p50_ms") == 50
    for dim in ("model", "provider", "user", "key"):
        page.select_option("#llp-split-dim", dim)
        expect(page.locator("#llp-chart-split")).to_have_attribute("data-ready", "1")
    page.select_option("#llp-split-dim", "provider")
    shoot(page, "admin-dashboard")
    resize(page, *WIDTHS["phone"])
    assert no_horizontal_scroll(page) == 0
    resize(page, *WIDTHS["desktop"])
    for window in ("Last 7 days", "Last 30 days"):
        page.get_by_role("link", name=window).click()
        expect(page.locator(".llp-head h2")).to_contain_text(window)
        assert number(page, "requests") == 15  # all rows are from the last few hours
        expect(page.locator("#llp-chart-requests")).to_have_attribute("data-ready", "1")
    shoot(page, "admin-dashboard-30-days")


def test_health_shows_cooldowns_with_the_reason_tests_and_clears_them(live: Any, page: Page, shoot: Any) -> None:
    demo = add_demo_provider()
    assert demo is not None
    cred = Credential.objects.get(provider=demo)
    live.reload()
    store = live.engine.gateway.router.store
    live.call(store.cool("demo/offline/demo", base=60.0, fixed=None, cap=600.0, reason="rate_limited", now=time.time()))
    admin(page, live.url)
    row = page.locator(f'#llp-health tr[data-credential="{cred.pk}"]')
    expect(row.locator(".llp-state")).to_have_text("cooling")
    expect(row).to_contain_text(re.compile(r"demo: rate_limited, failures 1, \d+ s left"))
    shoot(page, "admin-dashboard-health")
    row.get_by_role("button", name="Test").click()
    expect(page.locator(".messagelist")).to_contain_text(  # (the admin's CSS capitalises messages)
        re.compile(r"demo/offline: works \(HTTP 200, \d+ ms, model demo\)", re.I)
    )
    expect(page).to_have_url(live.url + "/admin/")
    row.get_by_role("button", name="Clear").click()
    expect(page.locator(".messagelist")).to_contain_text("Ended 1 cooldown.")
    expect(row.locator(".llp-state")).to_have_text("ready")
    assert store.list_cooldowns() == {}
    page.goto(live.url + f"/admin/proxy/credential/{cred.pk}/change/")
    page.locator("#llp-test-this").click()
    expect(page.locator(".messagelist")).to_contain_text(re.compile(r"demo/offline: works \(HTTP 200", re.I))
    shoot(page, "admin-credential")


def test_the_provider_and_credential_lists_fit_a_laptop_screen(live: Any, page: Page, shoot: Any) -> None:
    add_demo_provider()
    p = factories.provider("a-provider-with-a-rather-long-name", "http://127.0.0.1:9/v1", credentials=3)
    live.reload()
    admin(page, live.url)
    for name, url in (("admin-providers", "/admin/proxy/provider/"), ("admin-credentials", "/admin/proxy/credential/"),
                      ("admin-provider", f"/admin/proxy/provider/{p.pk}/change/")):  # fmt: skip
        page.goto(live.url + url)
        shoot(page, name)
        assert no_horizontal_scroll(page) == 0, url
        if page.locator("#changelist .results").count():
            assert box_overflow(page, "#changelist .results") <= 0, url  # every column on screen
    page.goto(live.url + "/admin/proxy/credential/")
    expect(page.locator("#result_list")).to_contain_text("ready")  # the state column is on screen


def test_a_request_appears_in_the_live_feed_within_two_seconds(live: Any, page: Page, shoot: Any) -> None:
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
    page.locator("#llp-live").scroll_into_view_if_needed()
    shoot(page, "admin-live-feed")
