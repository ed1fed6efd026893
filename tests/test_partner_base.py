"""The base class's knobs, set on an instance as a network described by data will set them, where no
built-in partner exercises them (a decimal comma, another macro syntax, a default currency of its own)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from partners.base import (
    ISO_8601,
    UNIX_SECONDS,
    Extra,
    ExtraKind,
    OrderStatus,
    ParsedOrder,
    Partner,
    PayloadError,
    describe_timestamp_format,
)


class Described(Partner):
    """A partner whose every knob is an instance attribute; parse() reads fixed parameter names."""

    slug = "described"
    name = "Described"

    def __init__(self, **knobs):
        for name, value in knobs.items():
            setattr(self, name, value)

    def parse(self, params):
        order_status, original_status = self.status(params)
        return ParsedOrder(
            uniq_id=self.text(params, "id", required=True), order_number="", click_id="c",
            order_status=order_status, original_status=original_status, currency=self.currency(params),
            revenue=self.money(params, "amount"), time_of_order=self.timestamp(params, "at"),
            extras=self.read_extras(params),
        )


def described(**knobs) -> Described:
    return Described(**{"statuses": {"ok": OrderStatus.COMPLETED}, "status_parameter": "state", **knobs})


def test_each_instance_reads_its_own_knobs():
    one = described(statuses={"created": OrderStatus.WAITING}, timezone="Asia/Vladivostok", default_currency="KZT")
    other = described(statuses={"created": OrderStatus.REJECTED})
    assert one.parse({"id": "1", "state": "Created"}).order_status == "waiting"
    assert other.parse({"id": "1", "state": "created", "currency": "EUR"}).order_status == "rejected"
    assert one.parse({"id": "1", "state": "created"}).currency == "KZT"
    assert one.parse({"id": "1", "state": "created", "at": "2026-03-01 10:00:00"}).time_of_order == datetime(
        2026, 3, 1, tzinfo=UTC)
    assert Described.timezone == "UTC" and Partner.default_currency is None  # nothing leaked to the classes


def test_a_decimal_comma():
    partner = described(decimal_separator=",", default_currency="EUR")
    amount = partner.parse({"id": "1", "state": "ok", "amount": "1500,05"}).revenue
    assert amount == Decimal("1500.05") and format(amount, "f") == "1500.05"
    assert partner.parse({"id": "1", "state": "ok", "amount": "0,000000001"}).revenue == Decimal("0.000000001")
    with pytest.raises(PayloadError, match="like 1500,50") as caught:
        partner.parse({"id": "1", "state": "ok", "amount": "1500.05"})
    assert caught.value.field == "amount"


def test_a_list_of_currencies_and_a_default():
    partner = described(currencies=("EUR", "CHF"), default_currency="CHF")
    assert partner.parse({"id": "1", "state": "ok"}).currency == "CHF"
    assert partner.parse({"id": "1", "state": "ok", "currency": "eur"}).currency == "EUR"
    with pytest.raises(PayloadError, match="not one of EUR, CHF"):
        partner.parse({"id": "1", "state": "ok", "currency": "USD"})


def test_time_forms_are_tried_in_order_and_named_in_the_message():
    partner = described(timestamp_formats=(UNIX_SECONDS, "%d/%m/%Y %H:%M", ISO_8601), default_currency="EUR")
    at = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    for sent in ("1772359200", "01/03/2026 10:00", "2026-03-01T13:00:00+03:00"):
        assert partner.parse({"id": "1", "state": "ok", "at": sent}).time_of_order == at
    with pytest.raises(PayloadError) as caught:
        partner.parse({"id": "1", "state": "ok", "at": "2026-03-01 10:00:00"})
    assert caught.value.message.endswith("in the form Unix seconds or DD/MM/YYYY HH:MM or ISO 8601 with an offset")
    assert describe_timestamp_format("%Y-%m-%dT%H:%M:%S") == "YYYY-MM-DDTHH:MM:SS"


def test_extras_of_every_kind_with_choices():
    partner = described(default_currency="EUR", extra_fields=(
        Extra("channel", "channel", choices=(("web", "web"), ("app", "app"))),
        Extra("n", "n", ExtraKind.INTEGER), Extra("ok", "ok", ExtraKind.BOOLEAN),
        Extra("when", "when", ExtraKind.TIMESTAMP), Extra("from", "from", ExtraKind.IP),
        Extra("from6", "from6", ExtraKind.IPV6),
    ))
    params = {"id": "1", "state": "ok", "channel": "app", "n": "007", "ok": "no", "when": "2026-03-01 10:00:00",
              "from": "192.0.2.1", "from6": "2001:DB8::1"}
    assert partner.parse(params).extras == {"channel": "app", "n": 7, "ok": False,
                                            "when": "2026-03-01T10:00:00+00:00", "from": "192.0.2.1",
                                            "from6": "2001:db8::1"}
    for name, bad in (("channel", "tv"), ("n", "-1"), ("n", "1" * 19), ("ok", "maybe"), ("from6", "192.0.2.1")):
        with pytest.raises(PayloadError) as caught:
            partner.parse({**params, name: bad})
        assert caught.value.field == name


def test_the_url_to_paste_in_another_macro_syntax():
    partner = described(parameters=("click", "sum"), macro=("{", "}"))
    assert partner.postback_url("https://h.example/webhook/T") == "https://h.example/webhook/T?click={click}&sum={sum}"
