"""Property tests: every parser under contract (the registered ones and the configured networks of
tests/networks.py), and the payload reader in front of them, on hostile input.

A parser may only answer a ParsedOrder that the database can store as it is, or a PayloadError
naming a field; anything else would be a 500 and a postback stored as an error instead of an order.
"""

import json
import re
from dataclasses import asdict
from datetime import UTC
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.models import Order
from orders.payload import payload_params
from partners.base import (
    MAX_TEXT_LENGTH,
    MONEY_DECIMAL_PLACES,
    MONEY_INTEGER_DIGITS,
    STATUS_WORD_LENGTH,
    OrderStatus,
    ParsedOrder,
    Partner,
    PayloadError,
)
from tests.strategies import bodies, form_encoded, params
from tests.test_partner_contract import PARTNERS_UNDER_CONTRACT

partners = pytest.mark.parametrize("partner", PARTNERS_UNDER_CONTRACT, ids=lambda partner: partner.slug)
fuzz = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
light = settings(fuzz, max_examples=300)


def assert_storable(parsed: ParsedOrder, partner: Partner) -> None:
    """What the Order table will take without an error on MariaDB in strict mode."""
    for name in ("uniq_id", "order_number", "click_id"):
        value = getattr(parsed, name)
        assert value == value.strip() and "\x00" not in value and len(value) <= MAX_TEXT_LENGTH
    assert parsed.uniq_id and parsed.click_id  # the key, and whom to credit (a lead has no order number)
    assert parsed.order_status in OrderStatus.values
    assert parsed.original_status == parsed.original_status.strip()
    assert len(parsed.original_status) <= STATUS_WORD_LENGTH and "\x00" not in parsed.original_status
    # No word only when the URL implied the status.
    assert parsed.original_status or (partner.implied_status and parsed.order_status == partner.implied_status)
    assert parsed.currency in partner.currencies if partner.currencies else re.fullmatch("[A-Z]{3}", parsed.currency)
    for name in ("revenue", "commission_fee"):
        amount = getattr(parsed, name)
        if amount is not None:
            assert isinstance(amount, Decimal) and amount.is_finite() and amount >= 0
            sign, digits, exponent = amount.as_tuple()
            assert -exponent <= MONEY_DECIMAL_PLACES
            assert len(digits) + min(exponent, 0) <= MONEY_INTEGER_DIGITS or amount == 0
    assert parsed.ip is None or (len(parsed.ip) <= 39 and "%" not in parsed.ip)
    for name in ("click_time", "time_of_order"):
        moment = getattr(parsed, name)
        if moment is not None:
            assert moment.utcoffset() is not None
            assert 1000 <= moment.astimezone(UTC).year <= 9999  # MariaDB DATETIME's range
    # Extras are flat and JSON-safe: they read back from the JSONField as they were written, types and all.
    extras = Order._meta.get_field("extras")
    assert all(isinstance(key, str) and type(value) in (str, int, bool) for key, value in parsed.extras.items())
    assert json.loads(json.dumps(parsed.extras, cls=extras.encoder), cls=extras.decoder) == parsed.extras
    # Django's own field validation: lengths, choices, decimal digits, IP syntax.
    Order(partner=partner.slug, **asdict(parsed)).clean_fields(exclude=["raw_payload"])


def every_example(**changes) -> dict[str, str]:
    """The example postbacks of every partner in one, changed: a pinned input each parser reads."""
    merged = {}
    for partner in PARTNERS_UNDER_CONTRACT:
        merged.update(partner.example)
    return {**merged, **changes}


def assert_parses_storable_or_refuses(partner: Partner, values: dict[str, str]) -> None:
    try:
        parsed = partner.parse(values)
    except PayloadError as error:
        assert error.message and isinstance(error.message, str)
        assert error.field is None or (isinstance(error.field, str) and len(error.field) <= 64)
    else:
        assert isinstance(parsed, ParsedOrder)
        assert_storable(parsed, partner)


@partners
@fuzz
@given(data=st.data())
def test_parser_answers_a_storable_order_or_a_payload_error(partner, data):
    assert_parses_storable_or_refuses(partner, data.draw(params(partner), label="params"))


# Inputs the fuzz once found to break storage, pinned so that every run tries them on every parser.
@partners
@pytest.mark.parametrize("values", [
    every_example(ip="fe80::1%eth0", action_ip="fe80::1%eth0"),  # a zone id: not an address, overflowed the column
    every_example(ipv6="fe80::1%" + "x" * 60),
    every_example(click_time="0001-01-01 00:00:00"),  # before year 1 in UTC: OverflowError
    every_example(time_of_order="0999-12-31 23:59:59", time="0999-12-31 23:59:59"),  # before what DATETIME holds
    every_example(time="0001-01-01T00:00:00+03:00", conversion_time="253402300800"),
], ids=["zone-id", "long-zone-id", "year-1", "year-999", "iso-year-1-and-unix-year-10000"])
def test_inputs_that_once_broke_storage(partner, values):
    assert_parses_storable_or_refuses(partner, values)


@fuzz
@given(query=form_encoded(), body_and_type=bodies())
def test_payload_reader_answers_flat_strings_or_a_payload_error(query, body_and_type):
    body, content_type = body_and_type
    try:
        result = payload_params(query.decode("latin-1").encode("latin-1").decode("utf-8", "replace"), body,
                                content_type)
    except PayloadError as error:
        assert error.message and (error.field is None or len(error.field) <= 64)
    else:
        for key, value in result.items():
            assert isinstance(key, str) and isinstance(value, str)
            key.encode("utf-8"), value.encode("utf-8")  # no lone surrogates reach the database


# Any text a sender can put in a parameter, without the lone surrogates no encoding can carry.
clean_params = st.dictionaries(st.text(st.characters(codec="utf-8"), min_size=1), st.text(st.characters(codec="utf-8")),
                               max_size=8)


@light
@given(values=clean_params)
def test_every_encoding_reads_back_the_same_parameters(values):
    assert payload_params(urlencode(values), b"", "") == values
    assert payload_params("", urlencode(values).encode(), "application/x-www-form-urlencoded") == values
    assert payload_params("", json.dumps(values).encode(), "application/json") == values
    half = len(values) // 2
    items = list(values.items())
    assert payload_params(urlencode(items[:half]), urlencode(items[half:]).encode(), "") == values


@light
@given(values=clean_params.filter(bool), other=st.text(st.characters(codec="utf-8")))
def test_a_parameter_repeated_with_another_value_is_refused_in_every_encoding(values, other):
    name, value = next(iter(values.items()))
    if other == value:
        other += "x"
    twice = urlencode(values) + "&" + urlencode({name: other})
    json_twice = json.dumps(values)[:-1] + ", " + json.dumps(name) + ": " + json.dumps(other) + "}"
    for query, body, content_type in ((twice, b"", ""), ("", twice.encode(), ""),
                                      ("", json_twice.encode(), "application/json")):
        with pytest.raises(PayloadError) as caught:
            payload_params(query, body, content_type)
        assert "more than once" in caught.value.message
