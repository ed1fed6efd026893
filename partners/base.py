"""What every partner parser is: a class that turns one postback's parameters into a ParsedOrder.

A parser is pure: no database, no settings, no request. It receives the delivery's parameters as a
plain `dict[str, str]` (query string, form body and JSON body already merged by the caller) and
either returns a ParsedOrder or raises PayloadError naming the offending field. Adding a network
means one module with a Partner subclass, one line in `partners.registry`, and its tests.

The ledger's vocabularies are defined here, once, as Django choices with their labels: the parsers
map every network's spellings onto them, and orders.models uses them as the columns' choices (orders
depends on partners, never the other way round).
"""

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar
from zoneinfo import ZoneInfo

from django.db.models import IntegerChoices, TextChoices
from django.utils.translation import gettext_lazy as _


class OrderStatus(TextChoices):
    WAITING = "waiting", _("waiting (new)")
    PENDING = "pending", _("pending (on hold)")
    COMPLETED = "completed", _("completed (confirmed)")
    REJECTED = "rejected", _("rejected (cancelled)")


# A final status is never undone by a later non-final one (see orders.current).
FINAL_STATUSES = (OrderStatus.COMPLETED, OrderStatus.REJECTED)


class OfferType(IntegerChoices):
    STANDARD = 1, _("standard")
    REFERRAL = 2, _("referral")
    OFFLINE = 3, _("offline")


# The values as sets, for the membership tests of every postback: on Python 3.11 a choices class's
# own `in` walks its members one by one.
STATUS_VALUES = frozenset(OrderStatus.values)
OFFER_TYPE_VALUES = frozenset(OfferType.values)


CURRENCIES = ("RUB", "USD", "EUR", "GBP", "TON")

# Money columns hold 15 integer digits and 9 fractional ones (TON is divisible to 1e-9).
MONEY_INTEGER_DIGITS = 15
MONEY_DECIMAL_PLACES = 9
# Longest value any free-text identifier column stores (see orders.models).
MAX_TEXT_LENGTH = 255
# Longest status word a network may send (Order.original_status keeps it as sent).
STATUS_WORD_LENGTH = 64
# Timestamps must convert to UTC within what a MariaDB DATETIME column holds.
MIN_YEAR, MAX_YEAR = 1000, 9999
# Amounts are plain ASCII fixed-point: no sign, exponent, separators or locale digits that
# Decimal() would otherwise accept.
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


class PayloadError(ValueError):
    """A postback that cannot be stored as an order. `field` names the parameter at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class ParsedOrder:
    """One order status event, validated and typed. Field names match orders.models.Order."""

    uniq_id: str
    order_number: str
    click_id: str
    order_status: str
    # The status word as the network sent it (stripped, in its own case), which order_status translates.
    original_status: str
    uniq_id_derived: bool = False
    offer_name: str = ""
    offer_id: str = ""
    sub: str = ""
    sub2: str = ""
    sub3: str = ""
    sub4: str = ""
    sub5: str = ""
    revenue: Decimal | None = None
    commission_fee: Decimal | None = None
    currency: str = "RUB"
    ip: str | None = None
    user_agent: str = ""
    click_time: datetime | None = None
    time_of_order: datetime | None = None
    # What the network sends beyond the fields above, JSON-safe (see Order.extras).
    extras: dict = field(default_factory=dict)


class Partner:
    """Base class for a network's parser. Subclasses set the class attributes and implement parse().

    `status_aliases` maps every spelling the network uses (lower-case) to an OrderStatus value;
    the canonical values map to themselves implicitly.
    """

    slug: ClassVar[str]
    name: ClassVar[str]
    timezone: ClassVar[str] = "UTC"
    status_aliases: ClassVar[dict[str, str]] = {}
    datetime_format: ClassVar[str] = "%Y-%m-%d %H:%M:%S"

    def parse(self, params: dict[str, str]) -> ParsedOrder:
        raise NotImplementedError

    # --- helpers for subclasses; each raises PayloadError in plain words ---------------------------

    def text(self, params: dict[str, str], name: str, *, required: bool = False,
             max_length: int = MAX_TEXT_LENGTH) -> str:
        value = params.get(name, "").strip()
        if required and not value:
            raise PayloadError(f"{name} is required", name)
        if len(value) > max_length:
            raise PayloadError(f"{name} is longer than {max_length} characters", name)
        if "\x00" in value:
            raise PayloadError(f"{name} contains a NUL character", name)
        return value

    def status(self, params: dict[str, str], name: str = "order_status") -> tuple[str, str]:
        """Our status for the network's word in `name`, and that word as sent (stripped)."""
        word = self.text(params, name, required=True, max_length=STATUS_WORD_LENGTH)
        raw = word.lower()
        status = raw if raw in STATUS_VALUES else self.status_aliases.get(raw)
        if status is None:
            accepted = ", ".join(sorted(STATUS_VALUES | set(self.status_aliases)))
            raise PayloadError(f"{name} {raw[:40]!r} is not a known status (accepted: {accepted})", name)
        return status, word

    def money(self, params: dict[str, str], name: str) -> Decimal | None:
        raw = self.text(params, name)
        if not raw:
            return None
        if not _PLAIN_DECIMAL.fullmatch(raw):
            raise PayloadError(f"{name} {raw[:40]!r} is not a plain non-negative number like 1500.50", name)
        integer, _, fraction = raw.partition(".")
        if len(fraction) > MONEY_DECIMAL_PLACES:
            raise PayloadError(f"{name} has more than {MONEY_DECIMAL_PLACES} decimal places", name)
        if len(integer.lstrip("0")) > MONEY_INTEGER_DIGITS:
            raise PayloadError(f"{name} is too large", name)
        return Decimal(raw)

    def choice(self, params: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
        raw = self.text(params, name).upper()
        if not raw:
            return default
        if raw not in choices:
            raise PayloadError(f"{name} {raw[:40]!r} is not one of {', '.join(choices)}", name)
        return raw

    def integer_choice(self, params: dict[str, str], name: str, choices: frozenset[int]) -> int | None:
        raw = self.text(params, name)
        if not raw:
            return None
        if not raw.isascii() or not raw.isdigit() or int(raw) not in choices:
            raise PayloadError(f"{name} {raw[:40]!r} is not one of {', '.join(map(str, sorted(choices)))}", name)
        return int(raw)

    def ip(self, params: dict[str, str], name: str, *, version: int | None = None) -> str | None:
        raw = self.text(params, name)
        if not raw:
            return None
        try:
            address = ipaddress.ip_address(raw)
        except ValueError:
            raise PayloadError(f"{name} {raw[:60]!r} is not an IP address", name) from None
        if address.version == 6 and address.scope_id is not None:
            # fe80::1%eth0 names an interface on the sender's machine; it is not a client address
            # and does not fit the column.
            raise PayloadError(f"{name} {raw[:60]!r} has a zone id (%...), which is not an address", name)
        if version and address.version != version:
            raise PayloadError(f"{name} {raw[:60]!r} is not an IPv{version} address", name)
        return str(address)

    def timestamp(self, params: dict[str, str], name: str) -> datetime | None:
        raw = self.text(params, name)
        if not raw:
            return None
        try:
            naive = datetime.strptime(raw, self.datetime_format)
        except ValueError:
            raise PayloadError(f"{name} {raw[:40]!r} is not a date in the form YYYY-MM-DD HH:MM:SS", name) from None
        aware = naive.replace(tzinfo=ZoneInfo(self.timezone))
        # Times are stored in UTC, in a column that holds the years 1000-9999 (MariaDB DATETIME).
        try:
            year = aware.astimezone(UTC).year
        except OverflowError:
            year = 0
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise PayloadError(f"{name} {raw[:40]!r} is outside the years {MIN_YEAR}-{MAX_YEAR}", name)
        return aware
