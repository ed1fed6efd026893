"""EPN.bz (ePN) postback parser.

The parameter list is the one the original service accepted "according to the official
documentation" (see README, "EPN.bz postback format"). ePN reports times in Moscow time. Parameters it does
not know are not an error: they stay in the order's stored raw payload.

ePN calls the URL it is given with its own parameters appended, so the URL to paste into its dashboard
is the bare webhook URL (no macros).
"""

import hashlib

from django.db.models import IntegerChoices
from django.utils.translation import gettext_lazy as _

from .base import Extra, ExtraKind, OrderStatus, ParsedOrder, Partner

OPTIONAL_TEXT = ("offer_name", "offer_id", "sub", "sub2", "sub3", "sub4", "sub5")


class OfferType(IntegerChoices):
    """ePN's type_id, kept in Order.extras."""

    STANDARD = 1, _("standard")
    REFERRAL = 2, _("referral")
    OFFLINE = 3, _("offline")


class EpnBz(Partner):
    slug = "epn_bz"
    name = "EPN.bz"
    timezone = "Europe/Moscow"
    # The postback's words, and the transactions API's approved/declined/canceled, which a postback may
    # carry too (see the README).
    statuses = {
        "waiting": OrderStatus.WAITING,
        "pending": OrderStatus.PENDING,
        "hold": OrderStatus.PENDING,
        "completed": OrderStatus.COMPLETED,
        "approved": OrderStatus.COMPLETED,
        "confirmed": OrderStatus.COMPLETED,
        "rejected": OrderStatus.REJECTED,
        "declined": OrderStatus.REJECTED,
        "canceled": OrderStatus.REJECTED,
        "cancelled": OrderStatus.REJECTED,
    }
    currencies = ("RUB", "USD", "EUR", "GBP", "TON")
    default_currency = "RUB"
    extra_fields = (
        Extra("type_id", _("offer type"), ExtraKind.INTEGER, choices=tuple(OfferType.choices)),
        Extra("offer_type", _("offer tag")),
        Extra("ipv6", _("click IPv6"), ExtraKind.IPV6),
    )
    parameters = (
        "click_id", "order_number", "uniq_id", "order_status", "offer_name", "offer_type", "offer_id", "type_id",
        "sub", "sub2", "sub3", "sub4", "sub5", "revenue", "commission_fee", "currency", "ip", "ipv6", "user_agent",
        "click_time", "time_of_order",
    )
    example = {"click_id": "123", "order_number": "ORDER-001", "uniq_id": "EPN-12345", "order_status": "waiting",
               "revenue": "1500", "commission_fee": "100"}

    def parse(self, params: dict[str, str]) -> ParsedOrder:
        click_id = self.text(params, "click_id", required=True)
        order_number = self.text(params, "order_number", required=True)
        order_status, original_status = self.status(params)
        offer = {name: self.text(params, name) for name in OPTIONAL_TEXT}
        uniq_id = self.text(params, "uniq_id")
        return ParsedOrder(
            uniq_id=uniq_id or derive_uniq_id(offer["offer_id"], order_number),
            uniq_id_derived=not uniq_id,
            order_number=order_number,
            click_id=click_id,
            order_status=order_status,
            original_status=original_status,
            revenue=self.money(params, "revenue"),
            commission_fee=self.money(params, "commission_fee"),
            currency=self.currency(params),
            ip=self.ip(params, "ip"),
            user_agent=self.text(params, "user_agent", max_length=1024),
            click_time=self.timestamp(params, "click_time"),
            time_of_order=self.timestamp(params, "time_of_order"),
            extras=self.read_extras(params),
            **offer,
        )


def derive_uniq_id(offer_id: str, order_number: str) -> str:
    """A stable key for a postback without uniq_id: order numbers are unique only within an offer.

    Hashed so that any offer_id and order_number, however long or odd, give a fixed-size key that
    cannot collide with ePN's own ids (those never start with "derived-").
    """
    digest = hashlib.sha256(f"{offer_id}\x1f{order_number}".encode()).hexdigest()[:40]
    return f"derived-{digest}"
