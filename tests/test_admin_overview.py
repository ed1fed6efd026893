"""The overview page (orders.overview, orders.summary, orders.views.overview): its figures against the
ledger, its access, its health marks against check_health, and its speed-keeping summary under
concurrent postbacks."""

import json
import os
import random
import threading
from collections import defaultdict
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone
from selenium.webdriver.common.by import By

from orders import health, overview, summary
from orders.ingest import ingest
from orders.models import DailySummary, Delivery, Order, ReconcileRun
from orders.rawrequest import RawRequest
from tests.admin_helpers import PASSWORD, make_admin, make_viewer
from tests.factories import postback
from tests.test_admin_browser import ARTIFACTS, browser, load_page, totals_rows  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

STATUSES = ("waiting", "pending", "completed", "rejected")


def epn(uniq_id, status, *, days_ago=0, commission="10.00", currency="RUB", minutes=0):
    received = timezone.now() - timedelta(days=days_ago, minutes=minutes)
    query = urlencode(postback(uniq_id=uniq_id, order_number=f"SHOP-{uniq_id}", order_status=status,
                               commission_fee=commission, currency=currency))
    return ingest(RawRequest(partner="epn_bz", method="GET", query_string=query, received_at=received))


def admitad(action_id, status, *, ready=False, days_ago=0, payment="5.00", minutes=0):
    from tests.test_partner_admitad import FULL

    params = {**FULL, "admitad_id": action_id, "order_id": f"A-{action_id}", "payment_status": status,
              "payment_sum": payment, "reward_ready": "1" if ready else "0", "currency": "RUB"}
    received = timezone.now() - timedelta(days=days_ago, minutes=minutes)
    return ingest(RawRequest(partner="admitad", method="GET", query_string=urlencode(params), received_at=received))


def ledger_truth():
    """A direct SQL aggregate over the ledger's current rows: {(day, partner, currency, status, ready):
    (orders, commission)}, each order on the (TIME_ZONE) day of its first row."""
    table = connection.ops.quote_name(Order._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.partner, c.currency, c.order_status, c.commission_fee, c.extras, f.first_at FROM {table} c"
            f" JOIN (SELECT partner, uniq_id, MIN(created_at) AS first_at FROM {table} GROUP BY partner, uniq_id) f"
            " ON f.partner = c.partner AND f.uniq_id = c.uniq_id WHERE c.is_current = %s", [True])
        rows = cursor.fetchall()
    truth = defaultdict(lambda: [0, Decimal(0)])
    for partner, currency, status, commission, extras, first_at in rows:
        if isinstance(first_at, str):  # SQLite hands back text
            first_at = Order._meta.get_field("created_at").to_python(first_at)
        if timezone.is_naive(first_at):  # MariaDB's naive UTC
            first_at = first_at.replace(tzinfo=UTC)
        ready = (json.loads(extras) if isinstance(extras, str) else extras).get("reward_ready") is True
        key = (summary.local_day(first_at), partner, currency, status, ready)
        truth[key][0] += 1
        truth[key][1] += Decimal(commission or 0)
    return {key: (count, total) for key, (count, total) in truth.items()}


def summarised():
    return {(row.day, row.partner, row.currency, row.order_status, row.reward_ready): (row.orders, row.commission)
            for row in DailySummary.objects.all()}


def test_smoke(client):
    epn("E1", "waiting", days_ago=3)
    epn("E1", "completed", days_ago=1)
    epn("E2", "pending", days_ago=2, currency="USD", commission="1.25")
    admitad("A1", "approved", ready=True, days_ago=1)
    summary.refresh()
    assert summarised() == ledger_truth()
    client.force_login(make_admin())
    response = client.get("/admin/")
    assert response.status_code == 200
    open("/tmp/i16b/overview.html", "w").write(response.content.decode())


def demo_data(seed=16):
    """A site's last three months, told through the write path: EPN.bz orders in roubles and dollars and
    Admitad actions, most of them moving on from waiting, some resent, one with other money (a conflict),
    a few invalid requests, and yesterday's reconciliation run."""
    rng = random.Random(seed)
    for number in range(1, 301):
        days_ago = min(int(rng.expovariate(1 / 25)), 89)
        minutes = rng.randrange(0, 24 * 60) if days_ago else rng.randrange(0, 8 * 60)
        currency = "USD" if number % 5 == 0 else "RUB"
        commission = f"{rng.uniform(20, 900) if currency == 'RUB' else rng.uniform(0.5, 12):.2f}"
        path = rng.choice([("waiting",), ("waiting", "pending"), ("waiting", "pending", "completed"),
                           ("waiting", "completed"), ("waiting", "rejected"), ("waiting", "pending", "rejected")])
        if days_ago > 20 and path == ("waiting",):
            path = ("waiting", "completed")
        for step, status in enumerate(path):
            later = max(days_ago - step * rng.randrange(0, 6), 0)
            epn(f"EPN-{number:05d}", status, days_ago=later, minutes=minutes, commission=commission,
                currency=currency)
        if number % 40 == 0:  # the network resends, once with other money
            epn(f"EPN-{number:05d}", path[-1], days_ago=0, minutes=rng.randrange(0, 600),
                commission=commission if number % 80 else "1.00", currency=currency)
    for number in range(1, 121):
        days_ago = min(int(rng.expovariate(1 / 25)), 89)
        payment = f"{rng.uniform(30, 600):.2f}"
        minutes = rng.randrange(0, 24 * 60) if days_ago else rng.randrange(0, 8 * 60)
        admitad(f"9{number:06d}", "pending", days_ago=days_ago, payment=payment, minutes=minutes)
        if number % 3 == 0:
            admitad(f"9{number:06d}", "hold", days_ago=max(days_ago - 1, 0), payment=payment, minutes=minutes)
        final = rng.choice(["approved", "approved", "declined", None])
        if final:
            admitad(f"9{number:06d}", final, ready=final == "approved" and rng.random() < 0.6,
                    days_ago=max(days_ago - rng.randrange(0, 10), 0), payment=payment, minutes=minutes)
    for _ in range(3):
        ingest(RawRequest(partner="epn_bz", method="GET", query_string=urlencode(postback(revenue="1 500"))))



# --- in Chromium ---------------------------------------------------------------------------------

def overview_screenshot(browser, *paths):
    """The page as a 1400 px wide PNG, as tall as its content, saved at each path."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, height + 140)  # the window's frame comes off its inner height
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(path))


@pytest.mark.django_db(transaction=True)
def test_overview_in_chromium(browser, live_server, settings):
    """The charts hold the data, the period switch works, each pipeline figure opens a list whose totals
    give the same figure. Saves the page to test-artifacts/overview.png, and to OVERVIEW_PNG if set
    (`OVERVIEW_PNG=docs/overview.png pytest tests/test_admin_overview.py -k chromium` makes the README's)."""
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.WEBHOOK_TOKENS = [*settings.WEBHOOK_TOKENS, ("admitad", "demo-admitad-token-" + "x" * 24)]
    settings.RECONCILE_APIS = {"epn_bz": {"client_id": "demo", "client_secret": "demo-secret"}}
    demo_data()
    ReconcileRun.objects.create(
        partner="epn_bz", since=timezone.localdate() - timedelta(days=3), until=timezone.localdate(),
        state=ReconcileRun.State.SUCCEEDED, started_by="cron", finished_at=timezone.now() - timedelta(hours=1),
        started_at=timezone.now() - timedelta(hours=1, minutes=2), pages=3, fetched=212, stored=2, conflicts=0)
    make_admin("boss")
    admin_url = f"{live_server.url}/{settings.ADMIN_URL}"
    browser.get(admin_url)
    browser.find_element(By.NAME, "username").send_keys("boss")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    load_page(browser, browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click, "#overview")

    # The charts: one per network and currency, 30 bars each, whose segments add up to the summary.
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart-block")
    assert [(chart.get_attribute("data-partner"), chart.get_attribute("data-currency")) for chart in charts] == [
        ("admitad", "RUB"), ("epn_bz", "RUB"), ("epn_bz", "USD")]
    for chart in charts:
        bars = chart.find_elements(By.CSS_SELECTOR, "g.bar")
        assert len(bars) == 30
        drawn = sum(Decimal(rect.get_attribute("data-commission"))
                    for rect in chart.find_elements(By.CSS_SELECTOR, "rect.segment"))
        assert drawn > 0
        assert drawn == sum(Decimal(bar.get_attribute("data-commission")) for bar in bars)
        assert float(chart.find_element(By.CSS_SELECTOR, "rect.segment").get_attribute("height")) > 0
        assert chart.find_element(By.CSS_SELECTOR, "g.bar title").get_attribute("textContent")
    sparks = browser.find_elements(By.CSS_SELECTOR, "tr.health-postbacks g.hour")
    assert len(sparks) == 48 and sum(int(spark.get_attribute("data-count")) for spark in sparks) > 0
    ARTIFACTS.mkdir(exist_ok=True)
    overview_screenshot(browser, ARTIFACTS / "overview.png", *filter(None, [os.environ.get("OVERVIEW_PNG")]))
    browser.set_window_size(1400, 1000)

    # The period switch.
    for days in (7, 90, 30):
        load_page(browser, browser.find_element(By.CSS_SELECTOR, f"#overview-periods a[data-days='{days}']").click,
                  f"#overview-periods strong[data-days='{days}']")
        assert {len(chart.find_elements(By.CSS_SELECTOR, "g.bar"))
                for chart in browser.find_elements(By.CSS_SELECTOR, "figure.chart-block")} == {days}

    # Every pipeline figure leads to a list whose totals give the same commission.
    figures = [(link.get_attribute("href"), link.text, row.get_attribute("data-currency"))
               for row in browser.find_elements(By.CSS_SELECTOR, "#overview-pipeline tbody tr")
               for link in row.find_elements(By.CSS_SELECTOR, "a.pipeline-figure")]
    assert len(figures) == 3 * 4 + 1  # Admitad also has "ready to pay out"
    for url, text, currency in figures:
        browser.get(url)
        totals = totals_rows(browser)
        if text == "0.00":
            assert totals in ({}, {"No orders match this filter.": []}), url
        else:
            assert totals[currency][2] == text, url


def test_demo_page(client):
    demo_data()
    client.force_login(make_admin())
    response = client.get("/admin/")
    open("/tmp/i16b/overview.html", "w").write(response.content.decode())
