"""EPN.bz (ePN) postback parser.

The parameter list is the one the original service accepted "according to the official
documentation" (see README, "EPN.bz postback format"). ePN reports times in Moscow time. Parameters it does
not know are not an error: they stay in the order's stored raw payload.
"""

import hashlib

from .base import CURRENCIES, OFFER_TYPE_VALUES, OrderStatus, ParsedOrder, Partner

OPTIONAL_TEXT = ("offer_name", "offer_id", "sub", "sub2", "sub3", "sub4", "sub5")


class EpnBz(Partner):
    slug = "epn_bz"
    name = "EPN.bz"
    timezone = "Europe/Moscow"
    # ePN's transactions API says approved/declined/canceled; the postback says completed/rejected.
    status_aliases = {
        "approved": OrderStatus.COMPLETED,
        "confirmed": OrderStatus.COMPLETED,
        "declined": OrderStatus.REJECTED,
        "canceled": OrderStatus.REJECTED,
        "cancelled": OrderStatus.REJECTED,
        "hold": OrderStatus.PENDING,
    }

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
            currency=self.choice(params, "currency", CURRENCIES, default="RUB"),
            ip=self.ip(params, "ip"),
            user_agent=self.text(params, "user_agent", max_length=1024),
            click_time=self.timestamp(params, "click_time"),
            time_of_order=self.timestamp(params, "time_of_order"),
            extras=self.extras(params),
            **offer,
        )

    def extras(self, params: dict[str, str]) -> dict:
        """ePN's own values, those sent: the offer type (1, 2, 3), the offer tag and the click's IPv6."""
        values = {
            "type_id": self.integer_choice(params, "type_id", OFFER_TYPE_VALUES),
            "offer_type": self.text(params, "offer_type"),
            "ipv6": self.ip(params, "ipv6", version=6),
        }
        return {name: value for name, value in values.items() if value not in (None, "")}


def derive_uniq_id(offer_id: str, order_number: str) -> str:
    """A stable key for a postback without uniq_id: order numbers are unique only within an offer.

    Hashed so that any offer_id and order_number, however long or odd, give a fixed-size key that
    cannot collide with ePN's own ids (those never start with "derived-").
    """
    digest = hashlib.sha256(f"{offer_id}\x1f{order_number}".encode()).hexdigest()[:40]
    return f"derived-{digest}"
