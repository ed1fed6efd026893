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
from django.db import connection, connections, transaction
from django.urls import reverse
from django.utils import timezone
from selenium.webdriver.common.by import By

from orders import health, overview, summary
from orders.ingest import ingest
from orders.models import DailySummary, Delivery, Order, OutboundEvent, ReconcileRun
from orders.rawrequest import RawRequest
from orders.replay import replay_selected
from tests import admin_helpers, test_admin_browser
from tests.admin_helpers import PASSWORD, make_admin, make_viewer
from tests.factories import postback
from tests.test_admin_browser import ARTIFACTS, load_page, totals_rows
from tests.webhook_receiver import SECRET

pytestmark = pytest.mark.django_db
staff_client = admin_helpers.staff_client  # the shared fixtures, used by name
browser = test_admin_browser.browser

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


def test_the_summary_equals_the_ledger_through_reordered_duplicate_conflicting_and_replayed_postbacks():
    epn("E1", "completed", days_ago=40)
    summary.refresh()
    epn("E1", "waiting", days_ago=41)  # arrives late, and moves the order to the day before
    epn("E2", "waiting", days_ago=3)
    epn("E2", "waiting", days_ago=0)  # a duplicate
    epn("E2", "waiting", days_ago=0, commission="99.00")  # a conflict: other money, the row stays
    summary.refresh()
    assert summarised() == ledger_truth()
    epn("E2", "rejected", days_ago=0)
    epn("E3", "pending", days_ago=2, currency="USD", commission="1.25")
    admitad("A1", "pending", days_ago=5)
    admitad("A1", "approved", ready=True, days_ago=1)
    admitad("A2", "approved", ready=False, days_ago=1)
    summary.refresh()
    assert summarised() == ledger_truth()
    assert Order.objects.filter(has_conflict=True).count() == 1
    # A replay of every delivery changes nothing; a refresh after it still agrees.
    replayed = replay_selected(Delivery.objects.all())
    assert replayed.created == 0
    summary.refresh()
    truth = ledger_truth()
    assert summarised() == truth
    first_day = summary.local_day(timezone.now() - timedelta(days=41))
    assert truth[(first_day, "epn_bz", "RUB", "completed", False)] == (1, Decimal("10.00"))
    assert truth[(summary.local_day(timezone.now() - timedelta(days=5)), "admitad", "RUB", "completed", True)] == (
        1, Decimal("5.00"))


def test_a_refresh_finds_an_old_day_through_a_new_status():
    epn("E1", "waiting", days_ago=60)
    summary.refresh()
    epn("E1", "completed")  # received today; the order still counts on its first day, 60 days ago
    epn("E9", "waiting", days_ago=70)  # stored late (a spooled postback keeps the time it was received)
    report = summary.refresh()
    assert report.days == 3  # each day a row of the changed orders was received on
    assert summarised() == ledger_truth()
    assert DailySummary.objects.get(partner="epn_bz", day=summary.local_day(timezone.now() - timedelta(days=60))
                                    ).order_status == "completed"


def test_a_refresh_recomputes_nothing_for_rows_the_last_one_saw_as_they_are():
    epn("E1", "waiting", days_ago=1)
    summary.refresh()
    assert summary.refresh().days == 0  # E1's row, stamped within LATE_COMMIT, was seen as it is
    epn("E1", "completed")  # the waiting row's flag changes (a new stamp), and a row is added
    assert summary.refresh().days == 2
    later = timezone.now() + summary.LATE_COMMIT + timedelta(seconds=1)
    assert summary.refresh(now=later).days == 0
    assert summary.refresh(now=later + timedelta(seconds=1)).days == 0
    assert summarised() == ledger_truth()


def test_a_page_view_leaves_a_burst_of_changed_days_to_check_health(client):
    epn("E0", "waiting", days_ago=30)
    summary.refresh()
    for days_ago in range(1, overview.PAGE_REFRESH_DAYS + 2):
        epn(f"E{days_ago}", "waiting", days_ago=days_ago)
    client.force_login(make_admin())
    page = client.get("/admin/").content.decode()
    assert 'id="overview-behind"' in page
    assert summarised() != ledger_truth()
    assert health.check_summary().data["days"] == overview.PAGE_REFRESH_DAYS + 1
    assert summarised() == ledger_truth()
    assert 'id="overview-behind"' not in client.get("/admin/").content.decode()


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_concurrent_postbacks_interleaved_with_refreshes_lose_or_double_no_order(webhook_url):
    """Eight threads post the statuses of 40 orders in shuffled order, resent and some with other money,
    through the webhook view, while two threads refresh the summary over and over."""
    from django.test import Client

    rng = random.Random(17)
    events = []
    for number in range(40):
        statuses = rng.sample(STATUSES, rng.randrange(1, 5))
        for status in statuses + rng.sample(statuses, 1):
            commission = "10.00" if rng.random() < 0.9 else "11.00"
            events.append({"uniq_id": f"C-{number}", "order_number": f"S-{number}", "order_status": status,
                           "commission_fee": commission, "currency": rng.choice(["RUB", "USD"]) if number % 7 == 0
                           else "RUB"})
    rng.shuffle(events)
    done, errors = threading.Event(), []

    def post(share):
        try:
            client = Client()
            for event in share:
                assert client.get(webhook_url, postback(**event)).status_code == 200
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connections.close_all()

    def refresh():
        try:
            while not done.is_set():
                summary.refresh()
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    refreshers = [threading.Thread(target=refresh) for _ in range(2)]
    posters = [threading.Thread(target=post, args=(events[index::8],)) for index in range(8)]
    for thread in refreshers + posters:
        thread.start()
    for thread in posters:
        thread.join(120)
    done.set()
    for thread in refreshers:
        thread.join(60)
    assert not errors
    summary.refresh()
    truth = ledger_truth()
    assert summarised() == truth
    assert sum(count for count, _total in truth.values()) == 40


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_an_order_committed_after_a_refresh_began_is_counted_by_the_next():
    """A postback's transaction that stamps its row before a refresh starts and commits after it: the
    next refresh still finds it (LATE_COMMIT), however its clock compares."""
    epn("E0", "waiting", days_ago=1)
    summary.refresh()
    inserted, refreshed, errors = threading.Event(), threading.Event(), []

    def slow_postback():
        try:
            with transaction.atomic():
                epn("E1", "waiting", days_ago=1)
                inserted.set()
                refreshed.wait(30)
        except Exception as error:  # asserted below
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_postback)
    thread.start()
    assert inserted.wait(30)
    summary.refresh()  # cannot see E1 yet
    refreshed.set()
    thread.join(30)
    assert not errors
    summary.refresh()
    assert summarised() == ledger_truth()
    assert sum(count for count, _total in summarised().values()) == 2


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_the_page_does_not_wait_for_a_refresh_that_is_running(client):
    """While another refresh holds the lock (a long --all), the page answers at once from the summary as it
    is, and says so; check_health reports the refresh as running rather than failing on a lock wait."""
    from orders.models import SummaryState

    epn("E1", "waiting", days_ago=1)
    summary.refresh()
    locked, release, errors = threading.Event(), threading.Event(), []

    def hold_the_lock():
        try:
            with transaction.atomic():
                SummaryState.objects.select_for_update().get(pk=summary.STATE_PK)
                locked.set()
                release.wait(30)
        except Exception as error:  # asserted below
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold_the_lock)
    thread.start()
    try:
        assert locked.wait(30)
        client.force_login(make_admin())
        response = client.get("/admin/")
        assert response.status_code == 200 and b'id="overview-behind"' in response.content
        assert summary.refresh(wait=False).busy
        assert health.check_summary().message == "another refresh is running"
    finally:
        release.set()
        thread.join(30)
    assert not errors
    assert b'id="overview-behind"' not in client.get("/admin/").content


# --- the page --------------------------------------------------------------------------------------

def test_viewer_sees_the_overview_and_non_staff_do_not(client):
    epn("E1", "completed", days_ago=2)
    client.force_login(make_viewer())
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b'id="overview-commission"' in response.content
    assert b'id="overview-link"' in client.get(reverse("admin:orders_order_changelist")).content
    client.force_login(User.objects.create_user("outsider", password="x" * 20))
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.logout()
    assert client.get("/admin/").status_code == 302


def test_staff_who_may_not_read_orders_get_the_list_of_applications(client):
    client.force_login(User.objects.create_user("clerk", password="x" * 20, is_staff=True))
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"overview-commission" not in response.content and b'id="overview-link"' not in response.content


def test_the_period_comes_from_the_query_and_defaults_to_30_days(staff_client):
    epn("E1", "completed", days_ago=2)
    for query, days in (("", 30), ("?days=7", 7), ("?days=90", 90), ("?days=8", 30), ("?days=x", 30)):
        page = staff_client.get(f"/admin/{query}").content.decode()
        assert page.count('class="bar"') == days, query


def test_each_pipeline_figure_is_the_total_of_its_list(staff_client):
    epn("E1", "completed", days_ago=2)
    epn("E2", "pending", days_ago=2, commission="2.50")
    admitad("A1", "approved", ready=True, days_ago=3, payment="7.00")
    admitad("A2", "approved", days_ago=3, payment="1.00")
    data = overview.build()
    checked = 0
    for pipeline in data.pipelines:
        for figure in pipeline.figures:
            query = figure.url.split("?", 1)[1]
            totals = staff_client.get(reverse("admin:orders_order_totals") + "?" + query).context["totals"]
            found = {row["currency"]: (row["rows"], row["commission"]) for row in totals}
            if figure.orders:
                assert found == {pipeline.currency: (figure.orders, figure.commission)}, figure
                checked += 1
            else:
                assert found == {}, figure
    assert checked == 4  # EPN confirmed and on hold; Admitad confirmed, and ready to pay out


# --- the health marks --------------------------------------------------------------------------------

def invalid_delivery():
    ingest(RawRequest(partner="epn_bz", method="GET", query_string=urlencode(postback(revenue="1 500"))))


def test_invalid_deliveries_are_red_exactly_when_check_health_warns(settings, staff_client):
    settings.HEALTH_INVALID_DELIVERIES = 2
    invalid_delivery()
    assert health.check_invalid_deliveries(timezone.now()).level == health.OK
    assert b'id="health-invalid" class="problem"' not in staff_client.get("/admin/").content
    invalid_delivery()
    assert health.check_invalid_deliveries(timezone.now()).level == health.WARNING
    page = staff_client.get("/admin/").content.decode()
    assert 'id="health-invalid" class="problem"' in page
    # The link lists exactly those deliveries.
    url = overview.build().invalid_url
    assert staff_client.get(url).context["cl"].result_count == 2
    settings.HEALTH_INVALID_DELIVERIES = 0
    assert health.check_invalid_deliveries(timezone.now()).level == health.OK


def test_the_outbox_backlog_is_red_exactly_when_check_health_warns(settings, staff_client):
    settings.OUTBOUND_URL = "https://site.example/hooks"  # nothing sends here: the event stays undelivered
    settings.OUTBOUND_SECRET = SECRET
    assert 'id="health-outbound">' in staff_client.get("/admin/").content.decode()
    epn("o-1", "waiting")
    page = staff_client.get("/admin/").content.decode()
    assert health.check_outbox(timezone.now()).level == health.OK
    assert 'id="health-outbound">' in page and "1 undelivered" in page
    OutboundEvent.objects.update(state=OutboundEvent.State.FAILED)
    assert health.check_outbox(timezone.now()).level == health.WARNING
    page = staff_client.get("/admin/").content.decode()
    assert 'id="health-outbound" class="problem"' in page and "1 failed" in page
    # The link lists the failed events, which staff resend from there.
    assert staff_client.get(overview.build().outbound_url).context["cl"].result_count == 1


def test_conflicts_are_red_until_marked_as_looked_at(settings, staff_client):
    settings.HEALTH_CONFLICTS = 1
    epn("E1", "waiting")
    assert health.check_conflicts().level == health.OK
    epn("E1", "waiting", commission="11.00")
    assert health.check_conflicts().level == health.WARNING
    assert 'id="health-conflicts" class="problem"' in staff_client.get("/admin/").content.decode()
    listed = staff_client.get(overview.build().conflicts_url).context["cl"]
    assert listed.result_count == 1
    conflict = Order.objects.get(has_conflict=True)
    response = staff_client.post(reverse("admin:orders_order_changelist") + "?rows=events", {
        "action": "mark_conflict_reviewed", "_selected_action": [conflict.pk]})
    assert response.status_code == 302
    conflict.refresh_from_db()
    assert conflict.conflict_reviewed_by == "boss" and conflict.conflict_reviewed_at is not None
    assert health.check_conflicts().level == health.OK
    assert 'id="health-conflicts" class="problem"' not in staff_client.get("/admin/").content.decode()


def test_a_viewer_may_not_mark_conflicts(client):
    epn("E1", "waiting")
    epn("E1", "waiting", commission="11.00")
    client.force_login(make_viewer())
    conflict = Order.objects.get(has_conflict=True)
    client.post(reverse("admin:orders_order_changelist") + "?rows=events", {
        "action": "mark_conflict_reviewed", "_selected_action": [conflict.pk]})
    conflict.refresh_from_db()
    assert conflict.conflict_reviewed_at is None


def test_silence_and_a_stale_reconciliation_are_red_as_check_health_says(settings, staff_client):
    settings.STALE_AFTER_HOURS = 24.0
    settings.RECONCILE_APIS = {"epn_bz": {"client_id": "id", "client_secret": "secret"}}
    settings.RECONCILE_STALE_HOURS = 6.0
    epn("E1", "waiting", days_ago=2)
    page = staff_client.get("/admin/").content.decode()
    assert 'class="health-postbacks problem" data-partner="epn_bz"' in page
    assert 'class="health-reconcile problem" data-partner="epn_bz"' in page
    epn("E2", "waiting")
    ReconcileRun.objects.create(partner="epn_bz", since=timezone.localdate(), until=timezone.localdate(),
                                state=ReconcileRun.State.SUCCEEDED, finished_at=timezone.now())
    page = staff_client.get("/admin/").content.decode()
    assert 'class="health-postbacks" data-partner="epn_bz"' in page
    assert 'class="health-reconcile" data-partner="epn_bz"' in page


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

def overview_screenshot(driver, *paths):
    """The page as a 1400 px wide PNG, as tall as its content, saved at each path."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, height + 140)  # the window's frame comes off its inner height
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))


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
    summary.refresh()  # check_health's: three months at once are more than a page view recomputes
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



@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_charts_write_amounts_as_the_money_filter_does(language, settings):
    from django.utils import translation

    from orders.templatetags.orders_admin import money
    from orders.templatetags.overview_charts import money_formatter

    settings.USE_THOUSAND_SEPARATOR = True
    with translation.override(language):
        formatter = money_formatter()
        for value in ("0", "1234567.5", "0.000000001", "1500.000000000", "123456789012345.123456789"):
            assert formatter(Decimal(value)) == money(Decimal(value)), value
