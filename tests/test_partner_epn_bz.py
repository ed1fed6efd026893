from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from partners.base import PayloadError
from partners.epn_bz import EpnBz, derive_uniq_id

BASE = {"click_id": "123", "order_number": "ORDER-001", "uniq_id": "EPN-12345", "order_status": "waiting"}
parser = EpnBz()


def parse(**changes):
    params = {**BASE, **changes}
    return parser.parse({k: v for k, v in params.items() if v is not None})


def error_of(**changes) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parse(**changes)
    return caught.value


def test_the_classic_new_order():
    order = parse(revenue="1500", commission_fee="100")
    assert (order.click_id, order.order_number, order.uniq_id, order.order_status) == (
        "123", "ORDER-001", "EPN-12345", "waiting")
    assert order.revenue == Decimal("1500") and order.commission_fee == Decimal("100")
    assert order.currency == "RUB"
    assert order.uniq_id_derived is False


@pytest.mark.parametrize("field", ["click_id", "order_number", "order_status"])
def test_required_fields(field):
    assert error_of(**{field: None}).field == field
    assert error_of(**{field: "  "}).field == field


@pytest.mark.parametrize("status", ["waiting", "pending", "completed", "rejected"])
def test_canonical_statuses(status):
    assert parse(order_status=status).order_status == status


@pytest.mark.parametrize(("alias", "status"), [
    ("approved", "completed"), ("CONFIRMED", "completed"), ("Declined", "rejected"),
    ("canceled", "rejected"), ("cancelled", "rejected"), ("HOLD", "pending"), ("Completed", "completed"),
])
def test_status_aliases_ignore_case(alias, status):
    assert parse(order_status=alias).order_status == status


def test_unknown_status_is_invalid_and_says_which_are_accepted():
    error = error_of(order_status="paid")
    assert error.field == "order_status"
    assert "paid" in error.message and "completed" in error.message


def test_missing_uniq_id_is_derived_deterministically_from_offer_and_order_number():
    first = parse(uniq_id=None, offer_id="42")
    again = parse(uniq_id=None, offer_id="42")
    other_offer = parse(uniq_id=None, offer_id="43")
    assert first.uniq_id_derived and first.uniq_id == again.uniq_id == derive_uniq_id("42", "ORDER-001")
    assert first.uniq_id != other_offer.uniq_id
    assert len(first.uniq_id) <= 255


@pytest.mark.parametrize(("raw", "expected"), [
    ("1500", Decimal("1500")), ("1500.50", Decimal("1500.50")), ("0.000000001", Decimal("0.000000001")),
    ("123456789012345.123456789", Decimal("123456789012345.123456789")), ("0", Decimal("0")),
])
def test_money_is_exact_decimal(raw, expected):
    order = parse(revenue=raw, commission_fee=raw, currency="TON")
    assert order.revenue == expected and isinstance(order.revenue, Decimal)
    assert format(order.commission_fee, "f") == raw


@pytest.mark.parametrize("raw", ["abc", "NaN", "Infinity", "-5", "1e3", "1,5", "1 000", "١٢", "0x10", "1_000",
                                 "1.0000000001", "1000000000000000", ".5", "5."])
def test_bad_money_is_invalid_never_zero(raw):
    assert error_of(revenue=raw).field == "revenue"
    assert error_of(commission_fee=raw).field == "commission_fee"


def test_currency_defaults_to_rub_and_is_checked():
    assert parse().currency == "RUB"
    assert parse(currency="usd").currency == "USD"
    assert parse(currency="TON").currency == "TON"
    assert error_of(currency="BTC").field == "currency"


def test_epn_own_values_are_typed_extras_and_absent_when_not_sent():
    order = parse(type_id="2", offer_type="aliexpress", ipv6="2001:DB8::1")
    assert order.extras == {"type_id": 2, "offer_type": "aliexpress", "ipv6": "2001:db8::1"}
    assert parse(type_id="", offer_type="  ", ipv6="").extras == {}
    for bad in ("4", "x", "²", "-1"):
        assert error_of(type_id=bad).field == "type_id"


def test_status_as_sent_is_kept_beside_ours():
    order = parse(order_status="  Approved ")
    assert (order.order_status, order.original_status) == ("completed", "Approved")


def test_ip_addresses_are_validated():
    order = parse(ip="203.0.113.7")
    assert order.ip == "203.0.113.7"
    assert parse(ip="2001:db8::2").ip == "2001:db8::2"
    assert error_of(ip="999.1.1.1").field == "ip"
    assert error_of(ipv6="203.0.113.7").field == "ipv6"


def test_times_are_moscow_time_and_timezone_aware():
    order = parse(click_time="2024-03-01 12:30:00", time_of_order="2024-03-01 13:00:05")
    moscow = ZoneInfo("Europe/Moscow")
    assert order.click_time == datetime(2024, 3, 1, 12, 30, tzinfo=moscow)
    assert order.click_time.utcoffset().total_seconds() == 3 * 3600
    assert order.time_of_order.tzinfo is not None


@pytest.mark.parametrize("raw", ["2024-02-30 10:00:00", "2024-03-01", "01.03.2024 10:00:00", "2024-03-01 25:00:00"])
def test_impossible_or_malformed_times_are_invalid(raw):
    assert error_of(click_time=raw).field == "click_time"


def test_optional_text_fields_and_cyrillic():
    order = parse(offer_name="АлиЭкспресс — «распродажа»", offer_id="7",
                  sub="a", sub2="b", sub3="c", sub4="d", sub5="e", user_agent="Mozilla/5.0")
    assert order.offer_name == "АлиЭкспресс — «распродажа»"
    assert (order.sub, order.sub5, order.offer_id) == ("a", "e", "7")


def test_overlong_values_are_invalid_not_truncated():
    assert error_of(click_id="x" * 256).field == "click_id"
    assert parse(click_id="x" * 255).click_id == "x" * 255


# --- The transactions API's records (reconciliation) -------------------------------------------------

def record(**attributes) -> dict:
    """A transactions/user record as ePN serves it (tests/fake_networks.py's shape), amounts as Decimal."""
    base = {"transactionId": "T-1", "order_number": "AE-1", "order_status": "pending", "revenue": Decimal("1500"),
            "commission_user": Decimal("75.50"), "currency": "RUB", "order_time": "2026-03-01 12:30:00",
            "user_click_id": "42", "click_id": "42", "offer_id": "9"}
    return {"type": "transaction", "id": "T-1",
            "attributes": {k: v for k, v in {**base, **attributes}.items() if v is not ...}}


def read(**attributes):
    return parser.read_api_record(record(**attributes))


def api_error_of(value) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        parser.read_api_record(value)
    return caught.value


@pytest.mark.parametrize(("word", "status"), [
    ("pending", "waiting"), ("hold", "pending"), ("approved", "completed"), ("completed", "completed"),
    ("rejected", "rejected"), ("canceled", "rejected"),
    # The postback's own words, as the postback means them.
    ("waiting", "waiting"), ("confirmed", "completed"), ("declined", "rejected"), ("cancelled", "rejected"),
    ("HOLD", "pending"),
])
def test_api_status_words_are_not_the_postbacks(word, status):
    order = read(order_status=word)
    assert (order.order_status, order.original_status) == (status, word)


def test_pending_is_new_in_the_api_and_on_hold_in_a_postback():
    assert read(order_status="pending").order_status == "waiting"
    assert parse(order_status="pending").order_status == "pending"


def test_an_api_record_reads_as_the_same_order_its_postback_would():
    order = read(commission_user=Decimal("0.123456789"), currency="TON", type_id=2, sub1="spring", sub5="x")
    postback = parse(uniq_id="T-1", order_number="AE-1", click_id="42", order_status="waiting", revenue="1500",
                     commission_fee="0.123456789", currency="TON", time_of_order="2026-03-01 12:30:00", offer_id="9",
                     type_id="2", sub="spring", sub5="x")
    assert order == replace(postback, original_status="pending")
    assert order.commission_fee == Decimal("0.123456789") and order.extras == {"type_id": 2}
    assert order.time_of_order == datetime(2026, 3, 1, 12, 30, tzinfo=ZoneInfo("Europe/Moscow"))


def test_the_id_is_transaction_id_else_the_records_id_and_the_click_user_click_id_else_click_id():
    assert read().uniq_id == "T-1"
    assert read(transactionId=None).uniq_id == "T-1"  # the record's own id
    assert read(transactionId="T-9").uniq_id == "T-9"
    assert read(user_click_id=None, click_id="7").click_id == "7"
    assert read(user_click_id="8", click_id="7").click_id == "8"


@pytest.mark.parametrize(("broken", "field"), [
    ({"transactionId": None}, "attributes.transactionId"),
    ({"commission_user": "1 234,50"}, "attributes.commission_user"),
    ({"commission_user": Decimal("-5")}, "attributes.commission_user"),
    ({"order_status": "frozen"}, "attributes.order_status"),
    ({"user_click_id": None, "click_id": None}, "attributes.user_click_id"),
    ({"order_time": "01/03/2026"}, "attributes.order_time"),
    ({"revenue": True}, "attributes.revenue"),
    ({"offer_id": {"id": 9}}, "attributes.offer_id"),
])
def test_a_malformed_record_is_a_payload_error_naming_the_records_field(broken, field):
    value = record(**broken)
    if "transactionId" in broken:
        del value["id"]
    error = api_error_of(value)
    assert error.field == field and field in error.message


def test_what_is_not_a_record_is_a_payload_error():
    for value in ([], "T-1", None, {"attributes": []}):
        api_error_of(value)


def test_a_record_survives_its_delivery_body_exactly():
    from partners.api import dump_record, load_record, plain

    value = record(commission_user=Decimal("0.000000001"), revenue=Decimal("1E+3"), offer_id="Ж")
    body = dump_record(value)
    assert load_record(body) == value and b"0.000000001" in body and "Ж".encode() in body
    assert parser.read_api_record(load_record(body)) == parser.read_api_record(value)
    assert plain(value)["attributes"]["revenue"] == "1000"  # JSON-safe, for the raw payload
