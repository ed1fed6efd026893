"""The admin lists' queries on MariaDB: each combination of filters that bench/admin_pages.py times reads an
index, never the whole table and never a sort of it (EXPLAIN of the very SQL the pages send); and a list
whose query meets ADMIN_QUERY_TIMEOUT says so instead of failing (orders.listquery)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bench.admin_pages import COMBINATIONS, TIMED_OUT_MARK
from orders.models import Delivery, Order
from tests.admin_helpers import make_admin

pytestmark = [pytest.mark.mariadb, pytest.mark.django_db(transaction=True)]  # ANALYZE TABLE commits

BIG_TABLES = {Order._meta.db_table, Delivery._meta.db_table}
KEYS = 2_500  # order keys; with their histories about 5,000 rows, enough for realistic plans
MONTH = {"created_at__from": (timezone.localdate() - timedelta(days=60)).isoformat(),
         "created_at__to": (timezone.localdate() - timedelta(days=30)).isoformat()}
# The pages of bench/admin_pages.py, and the index each one's queries read on the big table.
PAGES = [
    *((name, "admin:orders_order_changelist", query) for name, query in COMBINATIONS),
    ("status + a month", "admin:orders_order_changelist", {"order_status__exact": "completed", **MONTH}),
    ("network + a month", "admin:orders_order_changelist", {"partner": "epn_bz", **MONTH}),
    ("prefix search matching many", "admin:orders_order_changelist", {"q": "EPN-"}),
    ("prefix search matching many + USD", "admin:orders_order_changelist", {"q": "EPN-", "currency__exact": "USD"}),
    ("totals: completed + TON", "admin:orders_order_totals", {"order_status__exact": "completed",
                                                              "currency__exact": "TON"}),
    ("totals: USD + a month", "admin:orders_order_totals", {"currency__exact": "USD", **MONTH}),
    ("CSV: USD + a month", "admin:orders_order_export", {"currency__exact": "USD", **MONTH}),
    ("postbacks: invalid + network", "admin:orders_delivery_changelist", {"outcome__exact": "invalid",
                                                                         "partner": "epn_bz"}),
    ("postbacks: network + a month", "admin:orders_delivery_changelist", {
        "partner": "epn_bz", "received_at__from": MONTH["created_at__from"],
        "received_at__to": MONTH["created_at__to"]}),
]


@pytest.fixture
def ledger():
    """A ledger shaped like the bench's: most orders in roubles, statuses in several histories, some
    conflicts, spread over 100 days; a postback per order event, one in a hundred invalid."""
    start = timezone.now() - timedelta(days=100)
    histories = (("waiting",), ("waiting", "completed"), ("waiting", "pending", "completed"), ("waiting", "rejected"))
    currencies = ("RUB",) * 17 + ("USD", "EUR", "TON")
    orders = []
    for key in range(KEYS):
        history = histories[key % len(histories)]
        for position, status in enumerate(history):
            moment = start + timedelta(minutes=(key * 3 + position) * 100 * 24 * 60 / (KEYS * 3))
            orders.append(Order(
                partner="epn_bz", uniq_id=f"EPN-{key:06d}", order_number=f"SHOP-{key:06d}", click_id=f"user-{key}",
                order_status=status, original_status=status, currency=currencies[key % len(currencies)],
                revenue=Decimal("1500.00"), commission_fee=Decimal("150.00"), has_conflict=key % 97 == 0,
                is_current=position == len(history) - 1, created_at=moment))
    Order.objects.bulk_create(orders, batch_size=1000)
    Delivery.objects.bulk_create((
        Delivery(partner="epn_bz", method="GET", outcome="invalid" if number % 100 == 0 else "created",
                 order=None if number % 100 == 0 else order, received_at=order.created_at)
        for number, order in enumerate(Order.objects.order_by("pk"))), batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE {', '.join(sorted(BIG_TABLES))}")
        cursor.fetchall()


def explain(sql: str, params) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def big_table_plans(client, url_name: str, query: dict) -> list[dict]:
    """The EXPLAIN rows, on the big tables, of each query the page sends (its session and user aside)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(url_name), query)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200
    plans = []
    for captured in queries.captured_queries:
        sql = captured["sql"]
        # The time limit's prefix is not part of the statement EXPLAIN takes.
        sql = sql.split(" FOR ", 1)[1] if sql.startswith("SET STATEMENT") else sql
        if not any(f"`{table}`" in sql for table in BIG_TABLES):
            continue
        # The captured SQL has its parameters filled in already (as the server received them).
        plans += [{**row, "sql": sql} for row in explain(sql.replace("%", "%%"), ()) if row["table"] in BIG_TABLES]
    return plans


@pytest.mark.parametrize(("name", "url_name", "query"), PAGES, ids=[page[0] for page in PAGES])
def test_every_combination_reads_an_index_without_sorting_the_table(client, ledger, name, url_name, query):
    client.force_login(make_admin())
    plans = big_table_plans(client, url_name, query)
    assert plans
    for plan in plans:
        assert plan["type"] != "ALL" and plan["key"], (plan["sql"], {k: v for k, v in plan.items() if k != "sql"})
        assert "Using filesort" not in (plan["Extra"] or ""), plan


def test_a_list_that_takes_too_long_says_so_and_suggests_a_narrower_filter(client, ledger, settings):
    client.force_login(make_admin())
    settings.ADMIN_QUERY_TIMEOUT = 0.000001  # every query that reads rows is stopped at once
    for url_name, query in [("admin:orders_order_changelist", {"rows": "events"}),
                            ("admin:orders_order_changelist", {"q": "EPN-"}),
                            ("admin:orders_delivery_changelist", {})]:
        response = client.get(reverse(url_name), query)
        assert response.status_code == 200
        content = response.content
        assert TIMED_OUT_MARK in content or b"too many to count in time" in content, content[:2000]
    totals = client.get(reverse("admin:orders_order_totals"), {"rows": "events"})
    assert totals.status_code == 200 and TIMED_OUT_MARK in totals.content
    assert b"Narrow it" in totals.content
    export = client.get(reverse("admin:orders_order_export"), {"rows": "events"})
    assert export.status_code == 200 and TIMED_OUT_MARK in export.content


def test_the_time_limit_ends_with_the_request(client, ledger, settings):
    """SET STATEMENT limits the one statement: a query after the list's, on the same connection, runs
    without it."""
    client.force_login(make_admin())
    settings.ADMIN_QUERY_TIMEOUT = 0.000001
    client.get(reverse("admin:orders_order_changelist"), {"rows": "events"})
    assert Order.objects.count() > KEYS
