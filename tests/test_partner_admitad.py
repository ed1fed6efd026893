"""Admitad: the parser's mapping, statuses, times, money and extras; then postbacks through the one write
path (orders.ingest) on MariaDB, and one through the endpoint."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from orders.ingest import ingest, replay_delivery
from orders.models import Delivery, Order
from orders.rawrequest import RawRequest
from partners.admitad import Admitad
from partners.base import PayloadError

parser = Admitad()
MOSCOW = ZoneInfo("Europe/Moscow")
FULL = {
    "admitad_id": "3318092817", "order_id": "SHOP-1001", "payment_status": "approved", "subid": "user-42",
    "subid1": "s1", "subid2": "s2", "subid3": "s3", "subid4": "s4", "payment_sum": "75.50",
    "order_sum": "1500.01", "currency": "usd", "reward_ready": "1", "offer_id": "12345", "offer_name": "Магазин",
    "website_id": "777", "type": "sale", "time": "2026-03-01 12:30:00", "click_time": "2026-03-01 12:00:05",
    "conversion_time": "2026-03-01 12:31:00", "action_ip": "203.0.113.9", "user_agent": "Mozilla/5.0",
    "website_name": "cashback.example",
}


def parse(**changes):
    params = {**FULL, **changes}
    return parser.parse({name: value for name, value in params.items() if value is not None})


def error_of(**changes) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parse(**changes)
    return caught.value


def test_every_macro_lands_in_its_field():
    order = parse()
    assert (order.uniq_id, order.order_number, order.click_id) == ("3318092817", "SHOP-1001", "user-42")
    assert (order.order_status, order.original_status) == ("completed", "approved")
    assert (order.sub, order.sub2, order.sub3, order.sub4, order.sub5) == ("s1", "s2", "s3", "s4", "")
    assert (order.commission_fee, order.revenue, order.currency) == (Decimal("75.50"), Decimal("1500.01"), "USD")
    assert (order.offer_id, order.offer_name) == ("12345", "Магазин")
    assert order.time_of_order == datetime(2026, 3, 1, 12, 30, tzinfo=MOSCOW)
    assert order.click_time == datetime(2026, 3, 1, 12, 0, 5, tzinfo=MOSCOW)
    assert (order.ip, order.user_agent) == ("203.0.113.9", "Mozilla/5.0")
    assert order.extras == {"website_id": "777", "type": "sale", "reward_ready": True,
                            "conversion_time": "2026-03-01T12:31:00+03:00"}
    assert order.uniq_id_derived is False


@pytest.mark.parametrize("field", ["admitad_id", "subid", "payment_status"])
def test_required_fields(field):
    assert error_of(**{field: None}).field == field
    assert error_of(**{field: " "}).field == field


def test_a_lead_has_no_order_number():
    assert parse(order_id=None).order_number == ""


@pytest.mark.parametrize(("word", "status"), [
    ("pending", "waiting"), ("open", "waiting"), ("hold", "pending"), ("approved", "completed"),
    ("approved_but_stalled", "completed"), ("declined", "rejected"), ("rejected", "rejected"),
    ("PENDING", "waiting"), ("Approved_But_Stalled", "completed"), (" Hold ", "pending"),
])
def test_statuses_map_ignoring_case_and_keep_the_word_as_sent(word, status):
    order = parse(payment_status=word)
    assert (order.order_status, order.original_status) == (status, word.strip())


@pytest.mark.parametrize("word", ["waiting", "completed", "paid", "5", "approved but stalled"])
def test_any_other_status_is_invalid_and_says_which_are_accepted(word):
    error = error_of(payment_status=word)
    assert error.field == "payment_status"
    assert repr(word) in error.message and "approved_but_stalled" in error.message


@pytest.mark.parametrize("sent", [
    "2026-03-01 12:30:00", "01.03.2026 12:30:00", "2026-03-01T12:30:00+03:00", "2026-03-01T09:30:00Z",
    "2026-03-01T11:30:00+0200", "1772357400",
])
def test_every_time_format_names_the_same_instant(sent):
    moment = parse(time=sent, click_time=sent, conversion_time=sent)
    assert moment.time_of_order == moment.click_time == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert moment.time_of_order.utcoffset() is not None
    assert datetime.fromisoformat(moment.extras["conversion_time"]) == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_moscow_time_applies_only_where_no_offset_is_given():
    assert parse(time="2026-07-01 00:00:00").time_of_order.utcoffset() == timedelta(hours=3)
    assert parse(time="2026-07-01T00:00:00-05:00").time_of_order.utcoffset() == timedelta(hours=-5)
    assert parse(time="0").time_of_order == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse(conversion_time="01.03.2026 12:31:00").extras["conversion_time"] == "2026-03-01T12:31:00+03:00"


@pytest.mark.parametrize("sent", [
    "2026-03-01", "2026-03-01T12:30:00", "01/03/2026 12:30:00", "1e9", "-1", "2026-02-30 10:00:00",
    "30.02.2026 10:00:00", "2026-03-01T12:30:00+25:00", "yesterday", "1772357400.5",
])
def test_other_times_are_invalid_and_the_message_lists_the_forms(sent):
    error = error_of(time=sent)
    assert error.field == "time"
    assert "YYYY-MM-DD HH:MM:SS or ISO 8601 with an offset or DD.MM.YYYY HH:MM:SS or Unix seconds" in error.message
    assert error_of(conversion_time=sent).field == "conversion_time"


@pytest.mark.parametrize("sent", ["0999-12-31 23:59:59", "0001-01-01T00:00:00+03:00", "253402300800"])
def test_times_outside_what_the_column_holds_are_invalid(sent):
    assert error_of(time=sent).field == "time"


@pytest.mark.parametrize(("sent", "ready"), [
    ("1", True), ("0", False), ("true", True), ("FALSE", False), ("Yes", True), ("no", False), (" 1 ", True),
])
def test_reward_ready_is_a_boolean_extra(sent, ready):
    assert parse(reward_ready=sent).extras["reward_ready"] is ready


def test_absent_extras_are_left_out_and_bad_ones_refused():
    order = parse(reward_ready=None, website_id="", type=None, conversion_time=None)
    assert order.extras == {}
    for bad in ("2", "on", "да"):
        assert error_of(reward_ready=bad).field == "reward_ready"


@pytest.mark.parametrize(("sent", "code"), [("RUB", "RUB"), ("usd", "USD"), ("Kzt", "KZT"), (" eur ", "EUR")])
def test_any_iso_4217_shaped_currency_in_upper_case(sent, code):
    assert parse(currency=sent).currency == code


@pytest.mark.parametrize("sent", ["RU", "RUBL", "12$", "рубль", "ЁЁЁ", "rıb", None])
def test_other_currencies_and_none_at_all_are_invalid(sent):
    assert error_of(currency=sent).field == "currency"


@pytest.mark.parametrize(("raw", "expected"), [
    ("1500.01", Decimal("1500.01")), ("0.000000001", Decimal("0.000000001")), ("0", Decimal("0")),
    ("123456789012345.123456789", Decimal("123456789012345.123456789")),
])
def test_money_is_exact_decimal(raw, expected):
    order = parse(payment_sum=raw, order_sum=raw)
    assert order.commission_fee == order.revenue == expected
    assert format(order.commission_fee, "f") == raw


@pytest.mark.parametrize("raw", ["1500,50", "-5", "1e3", "NaN", "1 000", "1.0000000001", "1000000000000000"])
def test_bad_money_is_invalid(raw):
    assert error_of(payment_sum=raw).field == "payment_sum"
    assert error_of(order_sum=raw).field == "order_sum"


def test_action_ip_is_the_click_address():
    assert parse(action_ip="2001:DB8::7").ip == "2001:db8::7"
    assert error_of(action_ip="999.1.1.1").field == "action_ip"


def test_the_url_to_paste_is_one_line_with_every_macro():
    url = parser.postback_url("https://hooks.example.com/webhook/TOKEN")
    assert url == (
        "https://hooks.example.com/webhook/TOKEN?admitad_id=[[[admitad_id]]]&order_id=[[[order_id]]]"
        "&payment_status=[[[payment_status]]]&subid=[[[subid]]]&subid1=[[[subid1]]]&subid2=[[[subid2]]]"
        "&subid3=[[[subid3]]]&subid4=[[[subid4]]]&payment_sum=[[[payment_sum]]]&order_sum=[[[order_sum]]]"
        "&currency=[[[currency]]]&reward_ready=[[[reward_ready]]]&offer_id=[[[offer_id]]]"
        "&offer_name=[[[offer_name]]]&website_id=[[[website_id]]]&type=[[[type]]]&time=[[[time]]]"
        "&click_time=[[[click_time]]]&conversion_time=[[[conversion_time]]]&action_ip=[[[action_ip]]]"
        "&user_agent=[[[user_agent]]]"
    )


# --- through the write path ------------------------------------------------------------------------

def postback(**changes) -> RawRequest:
    params = {**FULL, **changes}
    query = urlencode({name: value for name, value in params.items() if value is not None})
    return RawRequest(partner="admitad", method="GET", query_string=query)


def stored(result) -> Order:
    assert result.order_id is not None, result
    return Order.objects.get(pk=result.order_id)


@pytest.mark.mariadb
@pytest.mark.django_db
def test_every_status_and_time_format_is_stored_exactly_on_mariadb():
    # One action through Admitad's statuses, each postback dated in another of its formats.
    sent = [("pending", "2026-03-01 12:30:00"), ("hold", "01.03.2026 12:30:00"),
            ("approved_but_stalled", "2026-03-01T09:30:00Z"), ("declined", "1772357400")]
    results = [ingest(postback(payment_status=word, time=time, order_sum="1500.01", payment_sum="75.07",
                               currency="RUB")) for word, time in sent]
    assert [result.outcome for result in results] == ["created"] * 4
    rows = [stored(result) for result in results]
    assert [(row.order_status, row.original_status) for row in rows] == [
        ("waiting", "pending"), ("pending", "hold"), ("completed", "approved_but_stalled"), ("rejected", "declined")]
    assert {row.time_of_order for row in rows} == {datetime(2026, 3, 1, 9, 30, tzinfo=UTC)}
    assert {(row.revenue, row.commission_fee) for row in rows} == {(Decimal("1500.01"), Decimal("75.07"))}
    assert [row.is_current for row in Order.objects.order_by("pk")] == [False, False, False, True]  # the later final
    row = rows[2]
    assert row.partner == "admitad" and row.extras == {"website_id": "777", "type": "sale", "reward_ready": True,
                                                      "conversion_time": "2026-03-01T12:31:00+03:00"}
    assert row.raw_payload["website_name"] == "cashback.example"  # not mapped, kept as sent
    # TON to the ninth place, at the largest amount the column holds.
    ton = stored(ingest(postback(admitad_id="TON-1", currency="ton", payment_sum="0.000000001",
                                 order_sum="999999999999999.999999999")))
    assert (ton.currency, ton.commission_fee, ton.revenue) == (
        "TON", Decimal("0.000000001"), Decimal("999999999999999.999999999"))


@pytest.mark.mariadb
@pytest.mark.django_db
def test_duplicates_and_conflicts_on_mariadb():
    first = ingest(postback(payment_status="approved_but_stalled", reward_ready="0"))
    again = ingest(postback(payment_status="approved_but_stalled", reward_ready="0"))
    assert (first.outcome, again.outcome, again.order_id) == ("created", "duplicate", first.order_id)
    # "approved" is completed too: the same event, a duplicate, whose other words are in its delivery only.
    paid = ingest(postback(payment_status="Approved", reward_ready="1"))
    assert (paid.outcome, paid.order_id, paid.conflict_fields) == ("duplicate", first.order_id, ())
    order = stored(first)
    assert order.original_status == "approved_but_stalled" and order.extras["reward_ready"] is False
    # Different money under the same key: flagged, never overwritten.
    conflict = ingest(postback(payment_status="approved", payment_sum="80.00", currency="EUR"))
    assert conflict.outcome == "duplicate" and conflict.conflict_fields == ("commission_fee", "currency")
    order.refresh_from_db()
    assert (order.commission_fee, order.currency, order.has_conflict) == (Decimal("75.50"), "USD", True)
    assert Order.objects.count() == 1 and Delivery.objects.filter(order=order).count() == 4


@pytest.mark.django_db
def test_an_unknown_status_is_a_400_naming_the_field_and_kept_for_replay(client, settings, monkeypatch):
    token = "admitad-test-token-0123456789abcdefghijklmnopqrstuvwxyz"
    settings.WEBHOOK_TOKENS = [*settings.WEBHOOK_TOKENS, ("admitad", token)]
    response = client.get(f"/webhook/{token}", {**FULL, "payment_status": "paid"})
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "payment_status" and "'paid'" in body["error"]
    delivery = Delivery.objects.get(pk=body["delivery_id"])
    assert (delivery.partner, delivery.outcome, delivery.error_field) == ("admitad", "invalid", "payment_status")
    monkeypatch.setitem(Admitad.statuses, "paid", "completed")  # the parser fix
    result = replay_delivery(delivery)
    assert result.outcome == "created"
    order = stored(result)
    assert (order.partner, order.order_status, order.original_status) == ("admitad", "completed", "paid")


# --- The statistics API's records (reconciliation) -----------------------------------------------------

def action(**changes) -> dict:
    """A statistics/actions record as Admitad serves it (tests/fake_networks.py's shape), amounts as Decimal."""
    base = {"action_id": 3318092817, "status": "approved_but_stalled", "payment": Decimal("75.50"),
            "cart": Decimal("1500.01"), "currency": "USD", "subid": "user-42", "subid1": "s1", "subid2": None,
            "subid3": None, "subid4": None, "action_date": "2026-03-01 12:30:00", "click_date": "2026-03-01 12:00:05",
            "status_updated": "2026-03-02 10:00:00", "order_id": "SHOP-1001", "advcampaign_id": 12345,
            "advcampaign_name": "Магазин", "action_type": "sale", "processed": 1, "paid": 0}
    return {**base, **changes}


def test_an_api_record_reads_as_the_same_order_its_postback_would():
    order = parser.read_api_record(action())
    postback = parse(payment_status="approved_but_stalled", currency="USD", subid2=None, subid3=None, subid4=None,
                     reward_ready=None, website_id=None, conversion_time=None, action_ip=None, user_agent=None)
    assert order == postback
    assert (order.uniq_id, order.order_status, order.original_status) == ("3318092817", "completed",
                                                                           "approved_but_stalled")
    assert order.commission_fee == Decimal("75.50") and order.revenue == Decimal("1500.01")
    assert order.time_of_order == datetime(2026, 3, 1, 12, 30, tzinfo=MOSCOW)


@pytest.mark.parametrize(("word", "status"), [("pending", "waiting"), ("approved", "completed"),
                                              ("approved_but_stalled", "completed"), ("declined", "rejected")])
def test_api_status_words_are_the_postbacks(word, status):
    assert parser.read_api_record(action(status=word)).order_status == status


@pytest.mark.parametrize(("broken", "field"), [
    ({"action_id": None}, "action_id"), ({"payment": "1 234,50"}, "payment"), ({"status": "frozen"}, "status"),
    ({"subid": None}, "subid"), ({"currency": "рубли"}, "currency"),
])
def test_a_malformed_record_is_a_payload_error_naming_the_records_field(broken, field):
    with pytest.raises(PayloadError) as caught:
        parser.read_api_record(action(**broken))
    assert caught.value.field == field and field in caught.value.message
