"""A network configured in the admin: its generic parser (mapping, statuses, formats, a decimal comma, a
status implied by the URL, errors naming the parameter at fault), the validation of its description,
and its postbacks through the one write path."""

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from orders.ingest import ingest, preview, replay_delivery
from orders.models import Delivery, Order
from orders.rawrequest import RawRequest
from partners.base import OrderStatus, PayloadError
from partners.configured import ConfiguredPartner, DateFormat, MacroSyntax
from partners.models import Network, NetworkToken
from partners.registry import get_partner
from tests.networks import actionpay, actionpay_row, gdeslon, gdeslon_row

MOSCOW = ZoneInfo("Europe/Moscow")
GDESLON = {"order_id": "GS-77", "sub_id": "user-5", "status": "Payed", "order_sum": "1500,50", "profit": "75,05",
           "action_time": "1772357400", "ip": "203.0.113.9", "currency": "usd", "website": "unmapped"}


def error_of(partner, params) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        partner.parse(params)
    return caught.value


def configured(**changes) -> ConfiguredPartner:
    return ConfiguredPartner(gdeslon_row(**changes).config())


# --- The parser -------------------------------------------------------------------------------------

def test_each_mapped_parameter_lands_in_its_field_and_nothing_else_is_read():
    order = gdeslon().parse(GDESLON)
    assert (order.uniq_id, order.order_number, order.click_id) == ("GS-77", "GS-77", "user-5")
    assert (order.order_status, order.original_status) == (OrderStatus.COMPLETED, "Payed")
    assert (order.revenue, order.commission_fee, order.currency) == (Decimal("1500.50"), Decimal("75.05"), "USD")
    assert order.time_of_order == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert order.ip == "203.0.113.9"
    # Unmapped fields are empty, and a configured network keeps no extras (its other parameters stay in
    # the raw payload, see below).
    assert (order.offer_id, order.offer_name, order.sub, order.user_agent, order.click_time) == ("", "", "", "", None)
    assert order.extras == {}


@pytest.mark.parametrize("word,status", [
    ("created", OrderStatus.WAITING), ("PENDING", OrderStatus.PENDING), ("Confirmed", OrderStatus.COMPLETED),
    (" payed ", OrderStatus.COMPLETED), ("CANCELLED", OrderStatus.REJECTED),
])
def test_several_words_map_to_one_status_ignoring_case(word, status):
    order = gdeslon().parse({**GDESLON, "status": word})
    assert (order.order_status, order.original_status) == (status, word.strip())


def test_an_unknown_status_word_names_the_status_parameter_and_the_accepted_words():
    error = error_of(gdeslon(), {**GDESLON, "status": "approved"})
    assert error.field == "status"
    assert error.message == ("status 'approved' is not a known status (accepted: cancelled, confirmed, created, "
                             "payed, pending)")


def test_amounts_use_the_networks_decimal_separator():
    assert gdeslon().parse({**GDESLON, "profit": "0,000000001"}).commission_fee == Decimal("0.000000001")
    error = error_of(gdeslon(), {**GDESLON, "profit": "75.05"})
    assert (error.field, error.message) == ("profit", "profit '75.05' is not a plain non-negative number like 1500,50")
    dotted = configured(decimal_separator=".")
    assert dotted.parse({**GDESLON, "profit": "75.05", "order_sum": "1"}).commission_fee == Decimal("75.05")
    assert error_of(dotted, {**GDESLON, "profit": "75,05", "order_sum": "1"}).field == "profit"


@pytest.mark.parametrize("date_format,sent,expected", [
    (DateFormat.YMD, "2026-03-01 12:30:00", datetime(2026, 3, 1, 12, 30, tzinfo=MOSCOW)),
    (DateFormat.DMY, "01.03.2026 12:30:00", datetime(2026, 3, 1, 12, 30, tzinfo=MOSCOW)),
    (DateFormat.ISO, "2026-03-01T12:30:00+03:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
    (DateFormat.UNIX, "1772357400", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
    (DateFormat.ANY, "01.03.2026 12:30:00", datetime(2026, 3, 1, 12, 30, tzinfo=MOSCOW)),
    (DateFormat.ANY, "1772357400", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
])
def test_times_in_the_networks_form_and_zone(date_format, sent, expected):
    partner = configured(date_format=date_format, timezone="Europe/Moscow")
    assert partner.parse({**GDESLON, "action_time": sent}).time_of_order == expected


@pytest.mark.parametrize("date_format,sent", [
    (DateFormat.YMD, "01.03.2026 12:30:00"), (DateFormat.DMY, "2026-03-01 12:30:00"),
    (DateFormat.ISO, "2026-03-01 12:30:00"), (DateFormat.UNIX, "2026-03-01 12:30:00"),
    (DateFormat.ANY, "March 1st"),
])
def test_a_time_in_another_form_is_refused_naming_the_parameter(date_format, sent):
    error = error_of(configured(date_format=date_format), {**GDESLON, "action_time": sent})
    assert error.field == "action_time" and "is not a date and time in the form" in error.message


def test_required_fields_are_named_by_the_networks_parameter():
    for parameter in ("order_id", "sub_id", "status"):
        params = {name: value for name, value in GDESLON.items() if name != parameter}
        assert error_of(gdeslon(), params).field == parameter


def test_the_currency_falls_back_to_the_default_or_is_required():
    without = {name: value for name, value in GDESLON.items() if name != "currency"}
    assert gdeslon().parse(without).currency == "RUB"
    assert error_of(configured(default_currency=""), without).field == "currency"
    assert error_of(gdeslon(), {**GDESLON, "currency": "рубли"}).field == "currency"
    assert configured(currency_parameter="").parse(GDESLON).currency == "RUB"  # unmapped: the default, always


def test_a_status_implied_by_the_url_needs_no_word_and_reads_none():
    order = actionpay(OrderStatus.REJECTED).parse({"uniqueid": "AP-1", "subaccount": "7", "payment": "10"})
    assert (order.order_status, order.original_status) == (OrderStatus.REJECTED, "")
    assert order.currency == "RUB" and order.commission_fee == Decimal("10")
    # A word sent anyway is not read: the URL says which event fired.
    assert actionpay(OrderStatus.WAITING).parse({**actionpay().example, "status": "approved"}).order_status == "waiting"
    # A network that sends no word, called without an implied status, cannot tell the status.
    bare = ConfiguredPartner(actionpay_row().config())
    assert bare.status_parameter is None and bare.implied_status is None
    error = error_of(bare, bare.example)
    assert error.field == "token" and "implies none" in error.message


def test_a_built_in_partners_url_may_imply_the_status_too():
    epn = get_partner("epn_bz")
    order = epn.implying(OrderStatus.COMPLETED).parse({**epn.example, "order_status": "waiting"})
    assert (order.order_status, order.original_status) == (OrderStatus.COMPLETED, "")
    assert epn.implied_status is None, "the registry's parser is not changed"


def test_the_url_to_paste_follows_the_networks_macro_syntax():
    url = "https://webhook.example.com/webhook/T0KEN"
    assert actionpay().postback_url(url) == (
        f"{url}?uniqueid={{uniqueid}}&subaccount={{subaccount}}&payment={{payment}}&offer={{offer}}&time={{time}}")
    # GdeSlon's order_id carries two fields and is listed once; the status word follows the click id.
    assert gdeslon().parameters == ("order_id", "sub_id", "status", "order_sum", "profit", "currency", "ip",
                                    "action_time")
    assert gdeslon().postback_url(url).startswith(f"{url}?order_id={{{{order_id}}}}&sub_id={{{{sub_id}}}}&")
    for macro, written in ((MacroSyntax.TRIPLE_BRACKETS, "[[[sub_id]]]"), (MacroSyntax.PERCENT, "%sub_id%"),
                           (MacroSyntax.DOLLAR, "$sub_id")):
        assert f"&sub_id={written}&" in configured(macro=macro).postback_url(url)
    assert configured(macro=MacroSyntax.NONE).postback_url(url) == url


def test_the_example_postback_parses_in_the_networks_own_forms():
    assert gdeslon().example == {"order_id": "1001", "sub_id": "123", "status": "created", "order_sum": "1500,00",
                                 "profit": "75,50", "currency": "RUB", "ip": "203.0.113.7",
                                 "action_time": "1772357400"}
    assert configured(date_format=DateFormat.DMY, timezone="Europe/Moscow").example["action_time"] == \
        "01.03.2026 12:30:00"
    assert gdeslon().parse(gdeslon().example).order_status == OrderStatus.WAITING


@pytest.mark.parametrize("changes", [{"uniq_id_parameter": ""}, {"click_id_parameter": ""},
                                     {"currency_parameter": "", "default_currency": ""}, {"timezone": "Mars/Base"}])
def test_a_description_that_cannot_parse_every_postback_builds_no_parser(changes):
    with pytest.raises((KeyError, ValueError)):
        configured(**changes)


# --- Validation of the description (the admin's form runs it) ---------------------------------------

def clean_errors(network: Network) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        network.clean()
    return caught.value.message_dict


@pytest.mark.django_db
def test_a_valid_description_is_normalised():
    network = gdeslon_row(completed_words=" Confirmed ,PAYED, confirmed,", default_currency="rub")
    network.clean()
    assert (network.completed_words, network.default_currency) == ("confirmed, payed", "RUB")


@pytest.mark.django_db
def test_the_required_fields_are_named_when_missing():
    errors = clean_errors(actionpay_row(uniq_id_parameter="", click_id_parameter=""))
    assert errors["uniq_id_parameter"] == ["Required: map the parameter that carries unique id."]
    assert errors["click_id_parameter"] == ["Required: map the parameter that carries click id (user)."]


@pytest.mark.django_db
@pytest.mark.parametrize("changes,field,message", [
    ({"rejected_words": "cancelled, Payed"}, "rejected_words", "Already a word for another status: payed."),
    ({"pending_words": "x" * 65}, "pending_words", "Longer than 64 characters"),
    ({"status_parameter": ""}, "status_parameter", "Map the parameter that carries the status words."),
    ({"waiting_words": "", "pending_words": "", "completed_words": "", "rejected_words": ""}, "waiting_words",
     "Give the network's words for our statuses"),
    ({"timezone": "Moscow"}, "timezone", "Moscow is not a time zone"),
    ({"default_currency": "RUBL"}, "default_currency", "A currency code of three letters"),
    ({"default_currency": "", "currency_parameter": ""}, "currency_parameter", "Map the parameter that carries the "
                                                                               "currency"),
    ({"slug": "epn_bz"}, "slug", "epn_bz is a built-in network's."),
])
def test_a_description_that_would_lose_postbacks_is_refused(changes, field, message):
    assert clean_errors(gdeslon_row(**changes))[field][0].startswith(message)


@pytest.mark.django_db
def test_a_network_without_a_status_word_needs_every_token_to_imply_one():
    network = actionpay_row()
    network.clean()  # no token yet: nothing to say
    network.save()
    token = NetworkToken(network=network, label="accepted")
    with pytest.raises(ValidationError) as caught:
        token.clean()
    assert "each of its URLs must imply a status" in caught.value.message_dict["implied_status"][0]
    NetworkToken(network=network, implied_status=OrderStatus.COMPLETED).clean()
    # A network that had a status word keeps its tokens without one only while the word is mapped.
    words = gdeslon_row()
    words.save()
    NetworkToken.issue(words)
    words.status_parameter, words.waiting_words = "", ""
    words.pending_words = words.completed_words = words.rejected_words = ""
    assert "since a token of this network implies none" in clean_errors(words)["status_parameter"][0]


# --- Through the one write path ---------------------------------------------------------------------

@pytest.mark.django_db
def test_a_configured_networks_postback_is_stored_like_any_other():
    gdeslon_row().save()
    result = ingest(RawRequest(partner="gdeslon", method="GET", query_string=urlencode(GDESLON)))
    assert result.outcome == Delivery.Outcome.CREATED
    order = Order.objects.get()
    assert (order.partner, order.uniq_id, order.order_status, order.original_status) == \
        ("gdeslon", "GS-77", "completed", "Payed")
    assert order.commission_fee == Decimal("75.05") and order.raw_payload["website"] == "unmapped"
    confirmed = urlencode({**GDESLON, "status": "confirmed"})
    again = ingest(RawRequest(partner="gdeslon", method="GET", query_string=confirmed))
    assert again.outcome == Delivery.Outcome.DUPLICATE


@pytest.mark.django_db
def test_the_implied_status_is_kept_with_the_delivery_so_a_replay_reads_it_again():
    actionpay_row().save()
    query = urlencode({"uniqueid": "AP-9", "subaccount": "7", "payment": "12,5"})  # a comma: invalid here
    result = ingest(RawRequest(partner="actionpay", method="GET", query_string=query,
                               implied_status=OrderStatus.REJECTED))
    assert result.outcome == Delivery.Outcome.INVALID and result.field == "payment"
    delivery = Delivery.objects.get()
    assert delivery.implied_status == OrderStatus.REJECTED
    # The network's separator is fixed (as staff would, in the admin); the replay reads the same request.
    Network.objects.filter(slug="actionpay").update(decimal_separator=",")
    from partners import snapshot

    snapshot.forget()  # an UPDATE sends no signal; the admin's save does
    assert preview(RawRequest.of_delivery(delivery)).outcome == Delivery.Outcome.CREATED
    replayed = replay_delivery(delivery)
    assert replayed.outcome == Delivery.Outcome.CREATED
    order = Order.objects.get()
    assert (order.order_status, order.original_status, order.commission_fee) == ("rejected", "", Decimal("12.5"))


@pytest.mark.django_db
@pytest.mark.parametrize("changes,field", [
    ({"slug": "Action Pay"}, "slug"), ({"slug": "x" * 33}, "slug"), ({"slug": ""}, "slug"),
    ({"uniq_id_parameter": "unique id"}, "uniq_id_parameter"),
    ({"click_id_parameter": "{subid}"}, "click_id_parameter"),
    ({"status_parameter": "a&b"}, "status_parameter"),
])
def test_a_slug_or_parameter_name_outside_its_alphabet_is_refused(changes, field):
    with pytest.raises(ValidationError) as caught:
        gdeslon_row(**changes).full_clean()
    assert field in caught.value.message_dict


@pytest.mark.django_db
def test_every_built_in_network_has_its_row_after_migrate_and_a_configured_one_may_become_built_in():
    from partners.apps import sync_built_in_networks

    Network.objects.filter(slug="epn_bz").delete()
    Network.objects.filter(slug="admitad").update(built_in=False, name="Admitad (configured)")
    token, _clear = NetworkToken.issue(Network.objects.get(slug="admitad"))
    sync_built_in_networks()
    assert list(Network.objects.filter(built_in=True).order_by("slug").values_list("slug", "name")) == \
        [("admitad", "Admitad"), ("epn_bz", "EPN.bz")]
    token.refresh_from_db()
    assert token.network.slug == "admitad" and token.live
