"""The order admin through Django's test client: list, filters, search, detail, totals, CSV, access."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from orders import admin as orders_admin
from orders.ingest import ingest
from orders.models import Delivery, Order
from tests import admin_helpers
from tests.admin_helpers import load_orders, make_viewer
from tests.factories import raw_get

pytestmark = pytest.mark.django_db
staff_client = admin_helpers.staff_client  # the shared fixture, used by name

LIST = "admin:orders_order_changelist"


def listed_uniq_ids(response):
    return sorted(order.uniq_id for order in response.context["cl"].result_list)


def test_list_shows_every_row_with_badges_and_current_status(staff_client):
    load_orders()
    response = staff_client.get(reverse(LIST))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 4
    content = response.content.decode()
    assert 'class="badge"' in content and "completed (confirmed)" in content
    assert "Download CSV" in content and "data-autoload" in content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"order_status__exact": "pending"}, ["EPN-1"]),
        ({"is_current__exact": "1"}, ["EPN-1", "EPN-2"]),
        ({"currency__exact": "USD"}, ["EPN-2"]),
        ({"has_conflict__exact": "1"}, ["EPN-2"]),
        ({"partner": "epn_bz", "order_status__exact": "waiting"}, ["EPN-1", "EPN-2"]),
        ({"q": "EPN-2"}, ["EPN-2"]),
        ({"q": "SHOP-"}, ["EPN-1", "EPN-1", "EPN-1", "EPN-2"]),  # prefix
        ({"q": "user-1"}, ["EPN-1", "EPN-1", "EPN-1"]),
        ({"q": "PN-2"}, []),  # not a substring search: only exact values and prefixes
    ],
)
def test_filters_and_search(staff_client, query, expected):
    load_orders()
    response = staff_client.get(reverse(LIST), query)
    assert response.status_code == 200
    assert listed_uniq_ids(response) == expected


def test_current_filter_shows_the_final_status_despite_a_later_pending(staff_client):
    load_orders()
    response = staff_client.get(reverse(LIST), {"is_current__exact": "1", "q": "EPN-1"})
    assert [order.order_status for order in response.context["cl"].result_list] == ["completed"]


def test_date_range_filters_take_whole_days_in_the_current_time_zone(staff_client):
    load_orders()
    Order.objects.filter(uniq_id="EPN-2").update(created_at=timezone.now() - timedelta(days=40))
    today = timezone.localdate().isoformat()
    response = staff_client.get(reverse(LIST), {"created_at__from": today, "created_at__to": today})
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
    assert listed_uniq_ids(response) == ["EPN-1"] * 3
    # The years span the whole table whatever the filter: MIN and MAX under two filters would read
    # every matching row (see fast_date_hierarchy).
    response = staff_client.get(reverse(LIST), {"order_status__exact": "completed"})
    assert listed_uniq_ids(response) == ["EPN-1"] and f"created_at__year={this_year - 2}" in response.content.decode()


def test_count_is_bounded_and_says_more_than(staff_client, monkeypatch):
    load_orders()
    monkeypatch.setattr(orders_admin.BoundedCountPaginator, "count_limit", 2)
    response = staff_client.get(reverse(LIST))
    assert response.context["cl"].paginator.count == 3
    content = response.content.decode()
    assert "more than 2 orders" in content
    assert "more than 2 results" in staff_client.get(reverse(LIST), {"q": "EPN-1"}).content.decode()
    assert 'id="load-totals"' in content and "data-autoload" not in content  # totals only on request


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


def test_totals_per_currency_for_the_filter(staff_client):
    load_orders()
    response = staff_client.get(reverse("admin:orders_order_totals"))
    totals = {row["currency"]: row for row in response.context["totals"]}
    assert totals["RUB"]["orders"] == 3 and totals["RUB"]["revenue"] == 4500
    assert totals["USD"]["revenue"] == pytest.approx(10.5) and totals["USD"]["commission"] == pytest.approx(1.25)
    response = staff_client.get(reverse("admin:orders_order_totals"), {"currency__exact": "USD"})
    assert [row["currency"] for row in response.context["totals"]] == ["USD"]


def test_csv_export_streams_the_filtered_rows_in_chunks(staff_client, monkeypatch):
    load_orders()
    monkeypatch.setattr(orders_admin, "EXPORT_CHUNK", 2)  # several keyset chunks for four rows
    response = staff_client.get(reverse("admin:orders_order_export"), {"q": "EPN-1"})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["id", "partner", "unique id"]
    body = rows[1:]
    assert [row[5] for row in body] == ["pending", "completed", "waiting"]
    assert {row[6] for row in body} == {"completed"}
    assert body[0][14].endswith("+03:00")  # received, in TIME_ZONE (Europe/Moscow)


def export(client, **query):
    response = client.get(reverse("admin:orders_order_export"), query)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    return response, b"".join(response.streaming_content).decode()


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
    {"is_current__exact": "x"},
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
    response = staff_client.get(reverse("admin:orders_order_totals"), query)
    assert response.status_code == 200 and list(response.context["totals"]) == []
    response = staff_client.get(reverse("admin:orders_order_export"), query)
    assert response.status_code == 200 and len(b"".join(response.streaming_content).splitlines()) == 1


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
