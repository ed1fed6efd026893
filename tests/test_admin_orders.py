"""The order admin through Django's test client: list, filters, search, detail, totals, CSV, access."""

import csv
import html
import io
import json
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from orders import admin as orders_admin
from orders.ingest import ingest
from orders.models import Delivery, Order
from orders.rawrequest import RawRequest
from tests import admin_helpers
from tests.admin_helpers import load_orders, make_viewer
from tests.factories import raw_get

pytestmark = pytest.mark.django_db
staff_client = admin_helpers.staff_client  # the shared fixture, used by name

LIST = "admin:orders_order_changelist"


def listed_uniq_ids(response):
    return sorted(order.uniq_id for order in response.context["cl"].result_list)


def test_the_list_shows_orders_at_their_current_status_by_default(staff_client):
    load_orders()
    response = staff_client.get(reverse(LIST))
    assert response.status_code == 200
    assert [(row.uniq_id, row.order_status) for row in response.context["cl"].result_list] == [
        ("EPN-2", "waiting"), ("EPN-1", "completed"),  # EPN-1's late pending is not its status
    ]
    content = response.content.decode()
    assert "<h1>Orders at their current status</h1>" in content
    assert "One row per order, at its current status" in content and "2 orders" in content
    assert 'class="badge"' in content and "completed (confirmed)" in content
    assert "Download CSV" in content and "data-autoload" in content


def test_status_events_are_shown_when_asked_for_and_labelled_as_such(staff_client):
    load_orders()
    response = staff_client.get(reverse(LIST), {"rows": "events"})
    rows = response.context["cl"].result_list
    assert [(row.uniq_id, row.order_status, row.current_status) for row in rows] == [
        ("EPN-2", "waiting", "waiting"), ("EPN-1", "pending", "completed"),
        ("EPN-1", "completed", "completed"), ("EPN-1", "waiting", "completed"),
    ]
    content = response.content.decode()
    assert "<h1>Order status events</h1>" in content
    assert "One row per status event" in content and "4 status events" in content
    assert "Show orders at their current status" in content
    assert "orders" not in response.context["cl"].count_text()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["EPN-1", "EPN-2"]),
        ({"order_status__exact": "completed"}, ["EPN-1"]),
        ({"order_status__exact": "pending"}, []),  # EPN-1 had a pending event, but it is completed
        ({"order_status__exact": "waiting"}, ["EPN-2"]),
        ({"currency__exact": "USD"}, ["EPN-2"]),
        ({"has_conflict__exact": "1"}, ["EPN-2"]),
        ({"partner": "epn_bz", "order_status__exact": "waiting"}, ["EPN-2"]),
        ({"q": "EPN-2"}, ["EPN-2"]),
        ({"q": "SHOP-"}, ["EPN-1", "EPN-2"]),  # prefix
        ({"q": "user-1"}, ["EPN-1"]),
        ({"q": "PN-2"}, []),  # not a substring search: only exact values and prefixes
        ({"rows": "events"}, ["EPN-1", "EPN-1", "EPN-1", "EPN-2"]),
        ({"rows": "events", "order_status__exact": "pending"}, ["EPN-1"]),
        ({"rows": "events", "order_status__exact": "waiting"}, ["EPN-1", "EPN-2"]),
        ({"rows": "events", "q": "user-1"}, ["EPN-1", "EPN-1", "EPN-1"]),
    ],
)
def test_filters_and_search(staff_client, query, expected):
    load_orders()
    response = staff_client.get(reverse(LIST), query)
    assert response.status_code == 200
    assert listed_uniq_ids(response) == expected


def test_the_currency_filter_lists_the_currencies_stored(staff_client):
    load_orders()
    Order.objects.create(partner="admitad", uniq_id="A-1", order_number="", click_id="u", order_status="waiting",
                         original_status="pending", currency="KZT", is_current=True)
    response = staff_client.get(reverse(LIST))
    (currencies,) = [spec for spec in response.context["cl"].filter_specs if spec.title == "currency"]
    assert [value for value, _label in currencies.lookup_choices] == ["KZT", "RUB", "USD"]
    assert listed_uniq_ids(staff_client.get(reverse(LIST), {"currency__exact": "KZT"})) == ["A-1"]


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)  # ANALYZE TABLE commits
def test_the_currency_filter_reads_the_currency_index_not_the_rows():
    Order.objects.bulk_create(
        Order(partner="epn_bz", uniq_id=f"U{number}", order_number="N", click_id="C", order_status="waiting",
              original_status="waiting", currency=("RUB", "USD", "TON")[number % 3]) for number in range(3000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE TABLE orders_order")
        cursor.fetchall()
        sql, params = orders_admin.stored_currencies().query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        (plan,) = [dict(zip([column[0] for column in cursor.description], row, strict=True))
                   for row in cursor.fetchall()]
    # A loose index scan: one probe per currency in an index that starts with it, whatever the table's size.
    assert plan["key"] in ("order_currency_created", "order_currency_status_created"), plan
    assert "Using index for group-by" in plan["Extra"], plan


def test_the_status_filter_is_titled_for_what_it_filters(staff_client):
    load_orders()
    titles = [spec.title for spec in staff_client.get(reverse(LIST)).context["cl"].filter_specs]
    assert "current status" in titles and "status" not in titles
    titles = [spec.title for spec in staff_client.get(reverse(LIST), {"rows": "events"}).context["cl"].filter_specs]
    assert "status" in titles and "current status" not in titles


def test_date_range_filters_take_whole_days_in_the_current_time_zone(staff_client):
    load_orders()
    Order.objects.filter(uniq_id="EPN-2").update(created_at=timezone.now() - timedelta(days=40))
    today = timezone.localdate().isoformat()
    response = staff_client.get(reverse(LIST), {"created_at__from": today, "created_at__to": today, "rows": "events"})
    assert listed_uniq_ids(response) == ["EPN-1"] * 3
    response = staff_client.get(reverse(LIST), {"created_at__to": (timezone.localdate() - timedelta(days=30))})
    assert listed_uniq_ids(response) == ["EPN-2"]
    assert staff_client.get(reverse(LIST), {"created_at__from": "yesterday"}).url.endswith("?e=1")
    assert staff_client.get(reverse(LIST), {"created_at__to": "2026-02-30"}).url.endswith("?e=1")


def test_date_hierarchy_lists_years_from_min_and_max(staff_client):
    load_orders()
    Order.objects.filter(uniq_id="EPN-2").update(created_at=timezone.now() - timedelta(days=800))
    response = staff_client.get(reverse(LIST))
    this_year = timezone.localdate().year
    content = response.content.decode()
    for year in range(this_year - 2, this_year + 1):
        assert f"created_at__year={year}" in content
    response = staff_client.get(reverse(LIST), {"created_at__year": this_year})
    assert listed_uniq_ids(response) == ["EPN-1"]
    # The years span the whole table whatever the filter: MIN and MAX under the order view's filters
    # would read every matching row (see fast_date_hierarchy).
    response = staff_client.get(reverse(LIST), {"order_status__exact": "completed"})
    assert listed_uniq_ids(response) == ["EPN-1"] and f"created_at__year={this_year - 2}" in response.content.decode()


def test_count_is_bounded_and_says_more_than(staff_client, monkeypatch):
    load_orders()
    monkeypatch.setattr(orders_admin.BoundedCountPaginator, "count_limit", 2)
    # Two orders are within the limit; their four status events are not.
    content = staff_client.get(reverse(LIST)).content.decode()
    assert "2 orders" in content and "more than" not in content and "data-autoload" in content
    response = staff_client.get(reverse(LIST), {"rows": "events"})
    assert response.context["cl"].paginator.count == 3
    content = response.content.decode()
    assert "more than 2 status events" in content
    assert "Calculate totals (more than 2 status events: this reads all of them)" in content
    assert 'id="load-totals"' in content and "data-autoload" not in content  # totals only on request
    assert "more than 2 results" in staff_client.get(reverse(LIST), {"rows": "events", "q": "EPN-1"}).content.decode()


def test_detail_shows_history_deliveries_and_current_status_read_only(staff_client):
    results = load_orders()
    waiting = Order.objects.get(uniq_id="EPN-1", order_status="waiting")
    response = staff_client.get(reverse("admin:orders_order_change", args=[waiting.pk]))
    assert response.status_code == 200
    assert [row.order_status for row in response.context["history"]] == ["waiting", "completed", "pending"]
    assert response.context["current_order"].order_status == "completed"
    delivery_ids = {delivery.pk for delivery in response.context["deliveries"]}
    assert delivery_ids == {result.delivery_id for result in results[:3]}
    content = response.content.decode()
    assert "<pre>{\n" in content and "&quot;order_number&quot;: &quot;SHOP-1&quot;" in content
    assert 'name="revenue"' not in content  # money is shown, never an input
    change_url = reverse("admin:orders_order_change", args=[waiting.pk])
    assert staff_client.post(change_url, {"revenue": "1"}).status_code == 403
    waiting.refresh_from_db()
    assert waiting.revenue == 1500


ADMITAD_APPROVED = {
    "admitad_id": "ADM-7", "order_id": "SHOP-7", "payment_status": "Approved_But_Stalled", "subid": "user-7",
    "payment_sum": "75.5", "order_sum": "1500", "currency": "usd", "reward_ready": "1", "website_id": "777",
    "type": "sale", "conversion_time": "2026-03-01T09:30:00Z",
}


def test_detail_shows_the_status_as_sent_and_the_networks_own_values(staff_client):
    result = ingest(RawRequest(partner="admitad", method="GET", query_string=urlencode(ADMITAD_APPROVED)))
    response = staff_client.get(reverse("admin:orders_order_change", args=[result.order_id]))
    content = response.content.decode()
    fields = readonly_fields(content)
    assert fields["status as sent"] == "Approved_But_Stalled"
    assert fields["payout"] == "reward ready: yes"  # in the money section, beside the amounts
    assert 'class="original-status">Approved_But_Stalled<' in content  # and in the status history
    extras = dict(re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", content))
    assert extras == {"website id": "777", "action type": "sale", "conversion time": "March 1, 2026, 12:30 p.m."}
    content = staff_client.get(reverse("admin:orders_order_change", args=[result.order_id]),
                               HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert readonly_fields(content)["выплата"] == "вознаграждение готово к выплате: да"

    ready = ingest(RawRequest(partner="admitad", method="GET", query_string=urlencode(
        {**ADMITAD_APPROVED, "admitad_id": "ADM-8", "reward_ready": "false"})))
    content = staff_client.get(reverse("admin:orders_order_change", args=[ready.order_id])).content.decode()
    assert readonly_fields(content)["payout"] == "reward ready: no"


def test_detail_of_an_epn_order_labels_its_extras_and_has_no_payout_row(staff_client):
    result = ingest(raw_get(type_id="2", offer_type="aliexpress", ipv6="2001:db8::1", order_status="HOLD"))
    content = staff_client.get(reverse("admin:orders_order_change", args=[result.order_id])).content.decode()
    assert readonly_fields(content)["status as sent"] == "HOLD"
    assert "payout" not in readonly_fields(content)
    extras = dict(re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", content))
    assert extras == {"offer type": "referral", "offer tag": "aliexpress", "click IPv6": "2001:db8::1"}
    plain = ingest(raw_get(uniq_id="EPN-PLAIN"))
    content = staff_client.get(reverse("admin:orders_order_change", args=[plain.order_id])).content.decode()
    assert readonly_fields(content)["network's own values"] == "-"


def readonly_fields(content: str) -> dict[str, str]:
    """The detail page's read-only fields, {label in lower case: text}, tags stripped."""
    pairs = re.findall(r'<label>([^<]*):</label>\s*<div class="readonly">(.*?)</div>', content, re.DOTALL)
    text = {label: re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]*>", "", value)) for label, value in pairs}
    return {html.unescape(label).lower(): html.unescape(value).strip() for label, value in text.items()}


def test_csv_holds_the_status_as_sent_and_the_extras_as_json(staff_client):
    ingest(RawRequest(partner="admitad", method="GET", query_string=urlencode(ADMITAD_APPROVED)))
    _response, content = export(staff_client)
    header, row = csv.reader(io.StringIO(content))
    values = dict(zip(header, row, strict=True))
    assert values["status as sent"] == "Approved_But_Stalled" and values["currency"] == "USD"
    assert json.loads(values["network's own values"]) == {
        "website_id": "777", "type": "sale", "reward_ready": True, "conversion_time": "2026-03-01T09:30:00+00:00"}


def totals(client, **query):
    """The totals page's rows, {currency: (rows, revenue, commission)}, with the amounts as Decimals."""
    response = client.get(reverse("admin:orders_order_totals"), query)
    assert response.status_code == 200
    rows = {row["currency"]: (row["rows"], row["revenue"], row["commission"]) for row in response.context["totals"]}
    # Compared with Decimals below, where a float that happens to equal one would pass too.
    assert all(isinstance(amount, Decimal) for _count, *amounts in rows.values() for amount in amounts)
    return rows


def test_totals_per_currency_for_the_filter(staff_client):
    load_orders()
    # EPN-1 went waiting -> completed -> pending: one order, counted once with the money of `completed`.
    assert totals(staff_client) == {"RUB": (1, Decimal("1500"), Decimal("100")),
                                    "USD": (1, Decimal("10.5"), Decimal("1.25"))}
    assert totals(staff_client, rows="events") == {"RUB": (3, Decimal("4500"), Decimal("300")),
                                                   "USD": (1, Decimal("10.5"), Decimal("1.25"))}
    assert totals(staff_client, currency__exact="USD") == {"USD": (1, Decimal("10.5"), Decimal("1.25"))}
    content = staff_client.get(reverse("admin:orders_order_totals")).content.decode()
    assert "Each order counted once, with its money at its current status." in content
    assert "<th>orders</th>" in content and "status events" not in content
    content = staff_client.get(reverse("admin:orders_order_totals"), {"rows": "events"}).content.decode()
    assert "Every status event counted" in content and "<th>status events</th>" in content


def export(client, **query):
    response = client.get(reverse("admin:orders_order_export"), query)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    return response, b"".join(response.streaming_content).decode()


def test_csv_export_streams_the_filtered_orders_in_chunks(staff_client, monkeypatch):
    load_orders()
    monkeypatch.setattr(orders_admin, "EXPORT_CHUNK", 2)  # several keyset chunks
    response, content = export(staff_client)
    assert re.fullmatch(r'attachment; filename="orders-current-status-\d{8}-\d{4}\.csv"',
                        response["Content-Disposition"])
    header, *body = csv.reader(io.StringIO(content))
    assert header[:8] == ["id", "partner", "unique id", "order number", "click id (user)", "current status",
                          "status as sent", "revenue"]
    assert "status" not in header and "current status of the order" not in header
    assert [(row[2], row[5], row[6], row[7]) for row in body] == [("EPN-2", "waiting", "waiting", "10.500000000"),
                                                                  ("EPN-1", "completed", "completed", "1500.000000000")]
    assert body[0][header.index("received")].endswith("+03:00")  # received, in TIME_ZONE (Europe/Moscow)


def test_csv_export_of_status_events_says_so(staff_client, monkeypatch):
    load_orders()
    monkeypatch.setattr(orders_admin, "EXPORT_CHUNK", 2)  # several keyset chunks for three rows
    response, content = export(staff_client, rows="events", q="EPN-1")
    assert re.fullmatch(r'attachment; filename="order-status-events-\d{8}-\d{4}\.csv"',
                        response["Content-Disposition"])
    header, *body = csv.reader(io.StringIO(content))
    assert header[:8] == ["status event id", "partner", "unique id", "order number", "click id (user)",
                          "status of the event", "status as sent", "current status of the order"]
    assert [row[5] for row in body] == ["pending", "completed", "waiting"]
    assert {row[7] for row in body} == {"completed"}
    assert body[0][header.index("received")].endswith("+03:00")


# Partner-supplied text a spreadsheet would run as a formula, and what the CSV holds instead: an
# apostrophe wherever a cell may start, at the start of the value, or inside it where a spreadsheet that
# splits on ";" (ru-RU) or tabs, or ends a row at a line break (its quotes no longer lining up), starts one.
HOSTILE_TEXT = {
    '=HYPERLINK("http://evil")': "'=HYPERLINK(\"http://evil\")",
    "@user": "'@user",
    "ord;=2+3;x": "ord;'=2+3;x",
    'a;"=1+1': "a;\"'=1+1",
    "x\n=cmd|' /C calc'!A0": "x\n'=cmd|' /C calc'!A0",
    "tab\t-1+1": "tab\t'-1+1",
    'q"; +1+1': "q\"; '+1+1",
    "Sale, -50% and 1+1=2": "Sale, -50% and 1+1=2",  # our own separator is inside quotes: left alone
}
TEXT_COLUMNS = {"order_number": "order number", "click_id": "click id (user)", "offer_name": "offer name",
                "offer_id": "offer id"}


def test_csv_quotes_every_field_and_never_starts_a_cell_with_a_formula(staff_client):
    sent = iter(HOSTILE_TEXT)
    orders = {f"EPN-F{number}": {field: next(sent) for field in TEXT_COLUMNS} for number in range(2)}
    for uniq_id, values in orders.items():
        assert ingest(raw_get(uniq_id=uniq_id, **values)).outcome == "created"
    assert Order.objects.get(uniq_id="EPN-F1").order_number == "x\n=cmd|' /C calc'!A0"  # stored as sent

    _response, content = export(staff_client)
    for delimiter in (",", ";", "\t"):
        cells = [cell for row in csv.reader(io.StringIO(content), delimiter=delimiter) for cell in row]
        assert cells and [cell for cell in cells if cell.lstrip(' "')[:1] in tuple("=+-@\t\r")] == []
    assert content.startswith('"id","partner","unique id",')  # every field quoted, the header too
    header, *rows = csv.reader(io.StringIO(content))
    exported = {(row[header.index("unique id")], field): row[header.index(column)]
                for row in rows for field, column in TEXT_COLUMNS.items()}
    assert {exported[uniq_id, field]: value for uniq_id, values in orders.items()
            for field, value in values.items()} == {guarded: sent for sent, guarded in HOSTILE_TEXT.items()}


def test_csv_writes_amounts_in_plain_notation(staff_client):
    ingest(raw_get(uniq_id="EPN-TON", currency="TON", revenue="0.000000001", commission_fee="0.00000001"))
    _response, content = export(staff_client)
    header, row = csv.reader(io.StringIO(content))
    assert (row[header.index("revenue")], row[header.index("commission")]) == ("0.000000001", "0.000000010")


# --- each order counted once ---------------------------------------------------------------------
# Six orders in three currencies, as networks send them: statuses out of order, a resent status with
# different money, amounts to the ninth decimal place. The current status (orders.current): a final
# status beats a non-final one whatever the order of arrival; otherwise the later arrival wins.
LEDGER = [
    # (uniq_id, currency, status, revenue, commission), in order of arrival
    ("A", "RUB", "waiting", "1000", "100"),
    ("A", "RUB", "completed", "1000", "150.50"),
    ("B", "RUB", "completed", "2000", "200"),
    ("B", "RUB", "waiting", "2000", "180"),  # late: B stays completed
    ("C", "USD", "waiting", "10.5", "1.25"),
    ("C", "USD", "waiting", "11", "1.30"),  # resent with other money: a conflict, not a second row
    ("D", "TON", "waiting", "12.123456789", "0.000000001"),
    ("D", "TON", "pending", "12.123456789", "0.000000002"),
    ("D", "TON", "rejected", "12.123456789", "0.000000003"),
    ("E", "TON", "completed", "1.000000001", "0.100000001"),
    ("F", "USD", "pending", "20", "2"),
    ("F", "USD", "waiting", "21", "2.10"),  # two non-finals: the later one, waiting, is current
]
CURRENT = {"A": "completed", "B": "completed", "C": "waiting", "D": "rejected", "E": "completed", "F": "waiting"}


def load_ledger():
    outcomes = [
        ingest(raw_get(uniq_id=uniq_id, order_number=f"SHOP-{uniq_id}", currency=currency, order_status=status,
                       revenue=revenue, commission_fee=commission)).outcome
        for uniq_id, currency, status, revenue, commission in LEDGER
    ]
    assert outcomes.count("duplicate") == 1 and Order.objects.count() == len(LEDGER) - 1


def test_totals_count_each_order_once_with_the_money_of_its_current_status(staff_client):
    load_ledger()
    assert totals(staff_client) == {
        "RUB": (2, Decimal("3000"), Decimal("350.50")),
        "TON": (2, Decimal("13.123456790"), Decimal("0.100000004")),
        "USD": (2, Decimal("31.5"), Decimal("3.35")),
    }
    assert totals(staff_client, rows="events") == {
        "RUB": (4, Decimal("6000"), Decimal("630.50")),
        "TON": (4, Decimal("37.370370368"), Decimal("0.100000007")),
        "USD": (3, Decimal("51.5"), Decimal("5.35")),
    }
    # A filter picks orders by their current status: B's late waiting does not make it a waiting order.
    assert totals(staff_client, order_status__exact="completed") == {
        "RUB": (2, Decimal("3000"), Decimal("350.50")), "TON": (1, Decimal("1.000000001"), Decimal("0.100000001")),
    }
    assert totals(staff_client, order_status__exact="waiting") == {"USD": (2, Decimal("31.5"), Decimal("3.35"))}
    assert totals(staff_client, order_status__exact="pending") == {}
    assert totals(staff_client, currency__exact="TON", order_status__exact="rejected") == {
        "TON": (1, Decimal("12.123456789"), Decimal("0.000000003"))}
    assert totals(staff_client, rows="events", order_status__exact="waiting") == {
        "RUB": (2, Decimal("3000"), Decimal("280")), "TON": (1, Decimal("12.123456789"), Decimal("0.000000001")),
        "USD": (2, Decimal("31.5"), Decimal("3.35")),
    }
    content = staff_client.get(reverse("admin:orders_order_totals")).content.decode()
    assert '<tr class="totals-TON"><td>TON</td><td>2</td><td>13.12345679</td><td>0.100000004</td></tr>' in content


def test_list_count_and_csv_hold_each_order_once_at_its_current_status(staff_client):
    load_ledger()
    response = staff_client.get(reverse(LIST))
    assert {row.uniq_id: row.order_status for row in response.context["cl"].result_list} == CURRENT
    assert response.context["cl"].count_text() == "6 orders"
    _response, content = export(staff_client)
    header, *rows = csv.reader(io.StringIO(content))
    columns = [header.index(name) for name in ("unique id", "current status", "revenue", "commission", "currency")]
    assert sorted(tuple(row[index] for index in columns) for row in rows) == [
        ("A", "completed", "1000.000000000", "150.500000000", "RUB"),
        ("B", "completed", "2000.000000000", "200.000000000", "RUB"),
        ("C", "waiting", "10.500000000", "1.250000000", "USD"),
        ("D", "rejected", "12.123456789", "0.000000003", "TON"),
        ("E", "completed", "1.000000001", "0.100000001", "TON"),
        ("F", "waiting", "21.000000000", "2.100000000", "USD"),
    ]
    response = staff_client.get(reverse(LIST), {"has_conflict__exact": "1"})
    assert listed_uniq_ids(response) == ["C"]
    response = staff_client.get(reverse(LIST), {"rows": "events", "order_status__exact": "waiting"})
    assert listed_uniq_ids(response) == ["A", "B", "C", "D", "F"]
    assert response.context["cl"].count_text() == "5 status events"
    _response, content = export(staff_client, rows="events")
    assert len(list(csv.reader(io.StringIO(content)))) == 1 + len(LEDGER) - 1


@pytest.mark.mariadb
def test_totals_are_exact_to_the_ninth_place_at_the_largest_amounts(staff_client):
    """Sums past a double's 15-16 significant digits: exact on MariaDB's DECIMAL (SQLite stores a REAL)."""
    for uniq_id, status, revenue in [("T1", "waiting", "999999999999999.999999999"),
                                     ("T1", "completed", "123456789012345.123456789"),
                                     ("T2", "completed", "0.000000001")]:
        ingest(raw_get(uniq_id=uniq_id, order_status=status, currency="TON", revenue=revenue, commission_fee=revenue))
    assert totals(staff_client) == {
        "TON": (2, Decimal("123456789012345.123456790"), Decimal("123456789012345.123456790"))}
    assert totals(staff_client, rows="events") == {
        "TON": (3, Decimal("1123456789012345.123456789"), Decimal("1123456789012345.123456789"))}
    content = staff_client.get(reverse("admin:orders_order_totals")).content.decode()
    assert "<td>123456789012345.12345679</td>" in content


# --- input the list answers with ?e=1 and the totals and the CSV with 400 -------------------------
BAD_QUERIES = [
    {"created_at__year": "abc"},
    {"created_at__year": "0"},
    {"created_at__year": "10000"},
    {"created_at__year": "9999"},  # the year's end is in 10000
    {"created_at__year": "9999", "created_at__month": "12"},
    {"created_at__year": "9999", "created_at__month": "12", "created_at__day": "31"},
    {"created_at__year": "1"},  # 0001-01-01 00:00 in Moscow is in year 0 in UTC
    {"created_at__year": "2026", "created_at__month": "13"},
    {"created_at__year": "2026", "created_at__month": "abc"},
    {"created_at__year": "2026", "created_at__month": "2", "created_at__day": "30"},
    {"created_at__month": "5"},  # a month of every year: no index range, a scan
    {"created_at__day": "5"},
    {"created_at__from": "yesterday"},
    {"created_at__to": "2026-02-30"},
    {"created_at__to": "9999-12-31"},  # the day after it does not exist
    {"time_of_order__to": "9999-12-31"},
    {"created_at__from": "0001-01-01"},
    {"time_of_order__from": "0001-01-01"},
    {"rows": "all"},
    {"is_current__exact": "1"},  # no such filter: the order view is the current rows
    {"has_conflict__exact": "abc"},
    {"type_id__exact": "abc"},
    {"revenue__gt": "abc"},
    {"offer_name__icontains": "x"},  # a field lookup that is not a filter: a scan
    {"raw_payload__contains": "x"},
    {"foo": "1"},
]


@pytest.mark.parametrize("query", BAD_QUERIES, ids=lambda query: "&".join(f"{k}={v}" for k, v in query.items()))
def test_bad_filter_input_is_refused_by_the_list_the_totals_and_the_csv(staff_client, query):
    load_orders()
    response = staff_client.get(reverse(LIST), query)
    assert response.status_code == 302 and response.url.endswith("?e=1")
    for name in ("admin:orders_order_totals", "admin:orders_order_export"):
        response = staff_client.get(reverse(name), query)
        assert response.status_code == 400, name
        assert b"Bad Request" in response.content and b"Traceback" not in response.content


@pytest.mark.parametrize("query", [
    {"created_at__year": "9998", "created_at__month": "12", "created_at__day": "31"},
    {"created_at__from": "9999-12-31"},
    {"created_at__to": "0001-01-01"},
    {"time_of_order__from": "9999-12-31", "time_of_order__to": "9999-12-30"},
], ids=lambda query: "&".join(f"{k}={v}" for k, v in query.items()))
def test_extreme_but_valid_dates_answer_an_empty_list(staff_client, query):
    load_orders()
    response = staff_client.get(reverse(LIST), query)
    assert response.status_code == 200 and listed_uniq_ids(response) == []
    assert totals(staff_client, **query) == {}
    _response, content = export(staff_client, **query)
    assert len(list(csv.reader(io.StringIO(content)))) == 1


def test_viewer_reads_but_changes_nothing(client):
    results = load_orders()
    client.force_login(make_viewer())
    assert client.get(reverse(LIST)).status_code == 200
    order_url = reverse("admin:orders_order_change", args=[results[0].order_id])
    assert client.get(order_url).status_code == 200
    assert client.get(reverse("admin:orders_order_export")).status_code == 200
    assert client.post(order_url, {"revenue": "1"}).status_code == 403
    assert client.get(reverse("admin:orders_order_add")).status_code == 403
    assert client.get(reverse("admin:orders_order_delete", args=[results[0].order_id])).status_code == 403
    delivery_list = client.get(reverse("admin:orders_delivery_changelist"))
    assert delivery_list.status_code == 200 and delivery_list.context["action_form"] is None  # no replay
    response = client.post(reverse("admin:orders_delivery_changelist"),
                           {"action": "replay", "_selected_action": [results[0].delivery_id]})
    assert response.status_code in (200, 302)
    assert Delivery.objects.get(pk=results[0].delivery_id).replayed_at is None
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_staff_without_a_group_sees_nothing(client):
    client.force_login(User.objects.create_user("nobody", password="x", is_staff=True))
    assert client.get(reverse(LIST)).status_code == 403
    assert client.get(reverse("admin:orders_order_totals")).status_code == 403
    assert client.get(reverse("admin:orders_order_export")).status_code == 403


@pytest.mark.parametrize(("amount", "shown"), [
    ("1500.000000000", "1500.00"), ("1500.5", "1500.50"), ("0.000000001", "0.000000001"), ("0", "0.00"),
    ("123456789012345.123456789", "123456789012345.123456789"), (None, "-"),
])
def test_money_is_shown_exactly_without_trailing_zeros(amount, shown):
    from decimal import Decimal

    from orders.templatetags.orders_admin import money

    assert money(Decimal(amount) if amount is not None else None) == shown


@pytest.mark.parametrize(("amount", "shown"), [("1500.000000000", "1500,00"), ("0.000000001", "0,000000001")])
def test_money_uses_the_decimal_separator_of_the_language(amount, shown):
    from decimal import Decimal

    from django.utils import translation

    from orders.templatetags.orders_admin import money

    with translation.override("ru"):
        assert money(Decimal(amount)) == shown


@pytest.mark.django_db
def test_list_csv_and_detail_queries_do_not_grow_with_the_rows_shown(staff_client):
    """The current status and money of each row come with the page's one query: no query per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(url):
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(url)
            b"".join(response.streaming_content) if response.streaming else response.content
        return len(captured)

    def counts():
        order = Order.objects.order_by("pk").first()
        urls = [reverse(LIST), reverse("admin:orders_order_export"), reverse("admin:orders_order_totals"),
                reverse("admin:orders_order_change", args=[order.pk]), reverse("admin:orders_delivery_changelist")]
        return [queries(url) for url in urls]

    def load(count, prefix):
        for number in range(count):
            for status in ("waiting", "completed"):
                assert ingest(raw_get(uniq_id=f"{prefix}-{number}", order_status=status)).outcome == "created"

    load(2, "FEW")
    counts()  # warms per-process caches (content types) so they do not count below
    few = counts()
    load(10, "MANY")
    assert Order.objects.count() == 24
    assert counts() == few


def test_a_prefix_many_orders_share_in_one_column_lists_them_by_it(staff_client, monkeypatch):
    """Ordered by time, the matches of a short prefix may all lie years back; listed by the searched value
    along its index, a page is found at once. The page says which order it uses."""
    for number, uniq_id in enumerate(["P-3", "P-1", "P-4", "P-2"]):
        ingest(raw_get(uniq_id=uniq_id, order_number=f"SHOP-{number}", click_id=f"user-{number}"))
    ingest(raw_get(uniq_id="Q-1", order_number="P-9", click_id="user-9"))  # "P-" starts its order number

    def listed(response):
        return [order.uniq_id for order in response.context["cl"].result_list]

    few = staff_client.get(reverse(LIST), {"q": "P-"})
    assert listed(few) == ["Q-1", "P-2", "P-4", "P-1", "P-3"]  # by time, newest first
    assert 'id="search-order"' not in few.content.decode()
    monkeypatch.setattr(orders_admin, "SEARCH_PROBE", 2)
    many = staff_client.get(reverse(LIST), {"q": "P-"})
    # Matched in two columns: by time still.
    assert listed(many) == ["Q-1", "P-2", "P-4", "P-1", "P-3"]
    many = staff_client.get(reverse(LIST), {"q": "P-", "partner": "epn_bz", "order_status__exact": "waiting"})
    assert listed(many) == ["Q-1", "P-2", "P-4", "P-1", "P-3"]
    one_column = staff_client.get(reverse(LIST), {"q": "P-", "currency__exact": "RUB"})
    assert listed(one_column) == ["Q-1", "P-2", "P-4", "P-1", "P-3"]
    Order.objects.filter(uniq_id="Q-1").update(order_number="SHOP-9")
    by_id = staff_client.get(reverse(LIST), {"q": "P-"})
    assert listed(by_id) == ["P-4", "P-3", "P-2", "P-1"]
    assert "they are listed by unique id, from the highest" in by_id.content.decode()
    assert listed(staff_client.get(reverse(LIST), {"q": "nothing-starts-so"})) == []
