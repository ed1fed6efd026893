"""The read-only API (/api/v1/): the list of current orders and its keyset walk, the filters, one order's
history, the keys (401), read-only (405), and the published OpenAPI schema."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone
from openapi_spec_validator import validate

from bench.admin_pages import insert_rows, order_rows
from orders import readapi
from orders.ingest import ingest
from orders.models import ApiKey, Order
from tests.factories import raw_get

pytestmark = pytest.mark.django_db
ORDERS = "/api/v1/orders"


@pytest.fixture(autouse=True)
def settled(settings):
    """Rows are listed as soon as they are written: the tests walk orders they have just stored. The
    settle delay itself is tested on its own below."""
    settings.API_SETTLE_SECONDS = 0


@pytest.fixture
def api(client):
    """The test client with a live key in its Authorization header."""
    _api_key, key = readapi.create_key("cashback site")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def store(uniq_id, status="waiting", **changes):
    result = ingest(raw_get(uniq_id=uniq_id, order_number=f"SHOP-{uniq_id}", order_status=status, **changes))
    assert result.order_id is not None, result
    return Order.objects.get(pk=result.order_id)


def walk(api, **params) -> list[dict]:
    """Every page from no cursor to the last (a cursor that does not advance fails, not loops)."""
    items, cursor = [], None
    for _page in range(1000):
        page = api.get(ORDERS, {**params, **({"cursor": cursor} if cursor else {})}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items
    raise AssertionError("the walk does not end")


def keys(items) -> list[str]:
    return [item["uniq_id"] for item in items]


def test_the_list_has_each_order_once_at_its_current_status_with_money_as_strings(api):
    store("EPN-1", "waiting")
    store("EPN-1", "completed")
    store("EPN-1", "pending")  # late: a final status is not undone
    store("EPN-2", "waiting", currency="TON", revenue="0.123456789", commission_fee="0.000000001",
          click_id="user-ton")
    page = api.get(ORDERS).json()
    assert page["has_more"] is False and keys(page["items"]) == ["EPN-1", "EPN-2"]
    first, ton = page["items"]
    assert first["status"] == "completed" and first["original_status"] == "completed"
    assert ton == {
        "partner": "epn_bz", "uniq_id": "EPN-2", "order_number": "SHOP-EPN-2", "click_id": "user-ton",
        "offer_id": ton["offer_id"], "offer_name": ton["offer_name"], "status": "waiting",
        "original_status": "waiting", "revenue": "0.123456789", "commission_fee": "0.000000001",
        "currency": "TON", "conflict": False, "time_of_order": ton["time_of_order"],
        "received_at": ton["received_at"], "updated_at": ton["updated_at"],
    }


def test_pages_are_linked_by_cursors_and_the_last_cursor_resumes_with_later_changes(api):
    for number in range(7):
        store(f"EPN-{number}")
    first = api.get(ORDERS, {"limit": 3}).json()
    assert keys(first["items"]) == ["EPN-0", "EPN-1", "EPN-2"] and first["has_more"]
    assert keys(walk(api, limit=3)) == [f"EPN-{number}" for number in range(7)]
    last = api.get(ORDERS, {"limit": 3, "cursor": first["next_cursor"]}).json()
    last = api.get(ORDERS, {"limit": 3, "cursor": last["next_cursor"]}).json()
    assert keys(last["items"]) == ["EPN-6"] and not last["has_more"]
    # At the end the cursor stays where it was: asking again later returns only what changed since.
    assert api.get(ORDERS, {"cursor": last["next_cursor"]}).json() == {
        "items": [], "next_cursor": last["next_cursor"], "has_more": False}
    store("EPN-3", "completed")
    store("EPN-9")
    later = api.get(ORDERS, {"cursor": last["next_cursor"]}).json()
    assert [(item["uniq_id"], item["status"]) for item in later["items"]] == [
        ("EPN-3", "completed"), ("EPN-9", "waiting")]


def test_orders_changed_at_the_same_instant_are_told_apart_by_their_id(api):
    for number in range(5):
        store(f"EPN-{number}")
    Order.objects.update(updated_at=timezone.now() - timedelta(minutes=1))
    assert keys(walk(api, limit=2)) == [f"EPN-{number}" for number in range(5)]


def test_a_walk_with_writes_between_its_pages_skips_no_order(api):
    """The contract: every order current when the walk began is seen; one changed during the walk is seen
    (again, if it was already passed) with its new status, after its old position."""
    for number in range(30):
        store(f"EPN-{number:02}")
    seen, cursor, has_more, round_ = [], None, True, 0
    while has_more and round_ < 100:
        page = api.get(ORDERS, {"limit": 4, **({"cursor": cursor} if cursor else {})}).json()
        seen += [(item["uniq_id"], item["status"]) for item in page["items"]]
        cursor, has_more = page["next_cursor"], page["has_more"]
        round_ += 1
        # Between pages: one order already passed moves on, one still ahead moves on, a new one arrives.
        if round_ <= 5:
            store(f"EPN-{round_:02}", "pending")
            store(f"EPN-{29 - round_:02}", "completed")
            store(f"NEW-{round_}")
    expected = {f"EPN-{n:02}" for n in range(30)} | {f"NEW-{n}" for n in range(1, 6)}
    assert {uniq_id for uniq_id, _status in seen} == expected
    current = dict(Order.objects.filter(is_current=True).values_list("uniq_id", "order_status"))
    # The last appearance of each order is its current status, and only a moved order appears twice.
    assert dict(seen) == current
    repeated = {uniq_id for uniq_id in current if keys_count(seen, uniq_id) > 1}
    assert repeated <= {f"EPN-{n:02}" for n in range(1, 6)}


def keys_count(seen, uniq_id) -> int:
    return sum(1 for key, _status in seen if key == uniq_id)


def test_a_hundred_thousand_orders_are_each_walked_exactly_once(api, terminal_report):
    """200,000 status rows (bench/admin_pages.py's histories: two per order on average) make 100,000 orders.
    On MariaDB, the production database, the whole hundred thousand; on SQLite a tenth, for the suite's time."""
    orders = 100_000 if connection.vendor == "mysql" else 10_000
    with connection.cursor() as cursor:
        insert_rows(cursor, Order, order_rows(2 * orders))
    expected = sorted(Order.objects.filter(is_current=True).values_list("uniq_id", flat=True))
    assert len(expected) == orders
    walked = keys(walk(api, limit=readapi.MAX_LIMIT))
    assert len(walked) == len(set(walked)) and sorted(walked) == expected
    if connection.vendor == "mysql":
        middle = Order.objects.get(uniq_id=expected[orders // 2], is_current=True)
        plan = readapi.page_query(cursor=readapi.encode_cursor(middle.updated_at, middle.pk)).explain()
        terminal_report(f"test_api_orders: EXPLAIN of a page half-way through the walk:\n{plan}")
        assert "order_api_updated" in plan and "filesort" not in plan


def test_filters_by_partner_click_id_status_and_time(api):
    store("A", click_id="user-1")
    store("B", click_id="user-2")
    store("B", "completed", click_id="user-2")
    store("C", "rejected", click_id="user-1")
    Order.objects.filter(uniq_id="A").update(updated_at=timezone.now() - timedelta(days=2))
    assert keys(walk(api, partner="epn_bz")) == ["A", "B", "C"]
    assert keys(walk(api, partner="admitad")) == []
    assert sorted(keys(walk(api, click_id="user-1"))) == ["A", "C"]
    assert keys(walk(api, status="completed")) == ["B"]
    assert keys(walk(api, status="waiting")) == ["A"]  # B's waiting row is not its current one
    assert keys(walk(api, partner="epn_bz", status="rejected", click_id="user-1")) == ["C"]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert keys(walk(api, updated_since=since)) == ["B", "C"]
    assert keys(walk(api, updated_since=since, limit=1)) == ["B", "C"]


def test_bad_parameters_answer_400_or_422_with_json(api):
    assert api.get(ORDERS, {"cursor": "bm90IGEgY3Vyc29y"}).status_code == 400
    assert api.get(ORDERS, {"cursor": "!!"}).json() == {"detail": "not a cursor this API returned"}
    assert api.get(ORDERS, {"status": "paid"}).status_code == 422
    assert api.get(ORDERS, {"limit": readapi.MAX_LIMIT + 1}).status_code == 422
    assert api.get(ORDERS, {"limit": 0}).status_code == 422
    # A time without its offset would mean a different moment on each side.
    assert api.get(ORDERS, {"updated_since": "2026-01-01T00:00:00"}).status_code == 422


def test_rows_are_listed_once_they_have_settled(api, settings):
    """A row appears API_SETTLE_SECONDS after its write, so that a transaction committing after its
    updated_at stamp is never behind a cursor already handed out (orders.readapi)."""
    settings.API_SETTLE_SECONDS = 10
    order = store("EPN-1")
    assert api.get(ORDERS).json()["items"] == []
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(seconds=11))
    assert keys(api.get(ORDERS).json()["items"]) == ["EPN-1"]


def test_a_write_that_commits_after_a_later_stamped_one_is_not_skipped(api, settings):
    """Two writers: B stamps its time first, C later, but C commits first. A consumer that read C and
    moved its cursor past it would never see B. Held back until settled, C is not listed before B is."""
    settings.API_SETTLE_SECONDS = 10
    now = timezone.now()
    for uniq_id, age in (("A", 30), ("C", 1)):
        Order.objects.filter(pk=store(uniq_id).pk).update(updated_at=now - timedelta(seconds=age))
    page = api.get(ORDERS).json()
    assert keys(page["items"]) == ["A"]
    Order.objects.filter(pk=store("B").pk).update(updated_at=now - timedelta(seconds=3))  # stamped before C
    Order.objects.update(updated_at=F("updated_at") - timedelta(seconds=10))  # ten seconds pass
    assert keys(api.get(ORDERS, {"cursor": page["next_cursor"]}).json()["items"]) == ["B", "C"]


def test_one_order_with_its_status_history(api):
    store("EPN/1", "waiting", revenue="100")
    store("EPN/1", "completed", revenue="100")
    store("EPN/1", "completed", revenue="120")  # a conflict on the completed row
    store("EPN/1", "pending")
    body = api.get(f"{ORDERS}/epn_bz/EPN/1").json()
    assert body["status"] == "completed" and body["conflict"] is True and body["uniq_id"] == "EPN/1"
    assert [(event["status"], event["current"], event["conflict"]) for event in body["history"]] == [
        ("waiting", False, False), ("completed", True, True), ("pending", False, False)]
    assert body["history"][0]["revenue"] == "100.000000000"


def test_an_unknown_order_is_404(api):
    store("EPN-1")
    assert api.get(f"{ORDERS}/epn_bz/EPN-2").status_code == 404
    response = api.get(f"{ORDERS}/admitad/EPN-1")
    assert response.status_code == 404 and response.json() == {"detail": "no such order"}


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer epnk_unknown", "Basic dXNlcjpwYXNz", "{key}"])
def test_a_request_without_a_live_key_is_401(client, header):
    _api_key, key = readapi.create_key("site")
    store("EPN-1")
    headers = {"HTTP_AUTHORIZATION": header.format(key=key)} if header else {}
    for url in (ORDERS, f"{ORDERS}/epn_bz/EPN-1"):
        response = client.get(url, **headers)
        assert response.status_code == 401 and response.json() == {"detail": "Unauthorized"}


def test_a_revoked_key_is_401(api):
    assert api.get(ORDERS).status_code == 200
    readapi.revoke(ApiKey.objects.all())
    assert api.get(ORDERS).status_code == 401


def test_a_key_is_stored_only_as_its_hash_and_notes_its_use(api):
    api_key = ApiKey.objects.get()
    key = api.defaults["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    assert len(key) == len(readapi.KEY_PREFIX) + 43 and api_key.prefix == key[: readapi.VISIBLE_CHARACTERS]
    assert api_key.key_hash == readapi.hash_key(key) != key and api_key.last_used_at is None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")
        assert not any(key in str(value) for row in cursor.fetchall() for value in row)
    api.get(ORDERS)
    assert ApiKey.objects.get().last_used_at is not None


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_key_reads_and_writes_nothing(api, method):
    store("EPN-1")
    for url in (ORDERS, f"{ORDERS}/epn_bz/EPN-1"):
        assert getattr(api, method)(url).status_code == 405
    assert Order.objects.count() == 1


def test_the_api_is_no_way_into_the_admin(api):
    assert api.get("/admin/").status_code == 302  # to the login page: a key is not a staff login


def test_the_openapi_schema_is_valid_and_describes_both_paths(client):
    response = client.get(f"{ORDERS.removesuffix('/orders')}/openapi.json")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    schema = json.loads(response.content)
    validate(schema)
    assert set(schema["paths"]) == {ORDERS, f"{ORDERS}/{{partner}}/{{uniq_id}}"}
    assert set(schema["paths"][ORDERS]) == {"get"}
    parameters = {parameter["name"] for parameter in schema["paths"][ORDERS]["get"]["parameters"]}
    assert parameters == {"partner", "click_id", "status", "updated_since", "cursor", "limit"}
    assert schema["components"]["securitySchemes"]["KeyAuth"] == {"type": "http", "scheme": "bearer"}


def test_there_is_no_docs_page_that_would_load_scripts_from_the_internet(client):
    assert client.get("/api/v1/docs").status_code == 404


def test_the_api_runs_past_the_browser_middleware(api):
    """No session, language or CSRF machinery (epnhook.middleware): the answer sets no cookie and varies
    with neither cookies nor language; the security headers still apply."""
    response = api.get(ORDERS)
    assert response.status_code == 200 and not response.cookies
    assert "Cookie" not in response.get("Vary", "") and "Accept-Language" not in response.get("Vary", "")
    assert response["X-Content-Type-Options"] == "nosniff"
