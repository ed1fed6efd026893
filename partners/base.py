"""What every partner parser is: a class that turns one postback's parameters into a ParsedOrder.

A parser is pure: no database, no settings, no request. It receives the delivery's parameters as a
plain `dict[str, str]` (query string, form body and JSON body already merged by the caller) and
either returns a ParsedOrder or raises PayloadError naming the offending field. Adding a network
means one module with a Partner subclass, one line in `partners.registry`, and its tests.

A network is described by the attributes of its Partner (its status words, time formats, decimal
separator, currencies, extras, postback URL parameters, an example postback), and the helpers read
every one of them through `self`: a subclass written in code sets them on the class, a partner
described by data sets them on the instance, and both parse alike.

A network whose own API lists its orders can also be reconciled (orders.reconcile): its Partner names
its client (`api_client`, see partners.api) and says where each postback parameter is in an API record
(`api_fields`); `read_api_record` then reads a record as its postback would be read, with the same
helpers and the same PayloadErrors, so the ledger cannot tell where an order event came from.

The ledger's vocabularies are defined here, once, as Django choices with their labels: the parsers
map every network's spellings onto them, and orders.models uses them as the columns' choices (orders
depends on partners, never the other way round).
"""

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from zoneinfo import ZoneInfo

from django.db.models import TextChoices
from django.utils.translation import gettext_lazy as _


class OrderStatus(TextChoices):
    WAITING = "waiting", _("waiting (new)")
    PENDING = "pending", _("pending (on hold)")
    COMPLETED = "completed", _("completed (confirmed)")
    REJECTED = "rejected", _("rejected (cancelled)")


# A final status is never undone by a later non-final one (see orders.current).
FINAL_STATUSES = (OrderStatus.COMPLETED, OrderStatus.REJECTED)
# The values as a set, for membership tests: on Python 3.11 a choices class's own `in` walks its
# members one by one.
STATUS_VALUES = frozenset(OrderStatus.values)


class ExtraKind(TextChoices):
    """What an extra holds, and so how it is read and stored in Order.extras (JSON-safe values only)."""

    TEXT = "text", _("text")
    INTEGER = "integer", _("whole number")
    BOOLEAN = "boolean", _("yes or no")
    TIMESTAMP = "timestamp", _("date and time")  # stored as ISO 8601 with its offset
    IP = "ip", _("IP address")
    IPV6 = "ipv6", _("IPv6 address")


@dataclass(frozen=True)
class Extra:
    """A value a network sends beyond the ledger's common fields, kept in Order.extras under `name`,
    the parameter it arrives in. Absent or empty, it is left out of extras."""

    name: str
    label: str  # what the admin calls it
    kind: str = ExtraKind.TEXT
    # Allowed values with their labels (Django choices); empty: any value of its kind.
    choices: tuple[tuple[object, str], ...] = ()
    # Shown beside the amounts in the order's money section (e.g. whether the money is ready to pay out).
    beside_money: bool = False


# Named forms in Partner.timestamp_formats, beside strptime formats (which always hold a "%").
ISO_8601 = "iso8601"  # 2026-03-01T12:30:00+03:00, or with Z; only with an offset
UNIX_SECONDS = "unix"  # seconds since 1970-01-01 00:00 UTC, e.g. 1772357400
_ISO_8601 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                       r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)")
_UNIX_SECONDS = re.compile(r"[0-9]{1,11}")  # up to the year 5138; MAX_YEAR bounds it further
_FORMAT_WORDS = {ISO_8601: "ISO 8601 with an offset", UNIX_SECONDS: "Unix seconds"}
_STRPTIME_WORDS = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "HH", "%M": "MM", "%S": "SS"}

# Money columns hold 15 integer digits and 9 fractional ones (TON is divisible to 1e-9).
MONEY_INTEGER_DIGITS = 15
MONEY_DECIMAL_PLACES = 9
# Amounts are plain ASCII fixed-point, with the network's decimal separator: no sign, exponent,
# thousands separators or locale digits that Decimal() would otherwise accept.
_PLAIN_DECIMAL = {".": re.compile(r"[0-9]+(\.[0-9]+)?"), ",": re.compile(r"[0-9]+(,[0-9]+)?")}
DECIMAL_SEPARATORS = tuple(_PLAIN_DECIMAL)
# An ISO 4217 code: what a partner that lists no currencies accepts (upper-cased).
CURRENCY_CODE = re.compile(r"[A-Z]{3}")
# Longest value any free-text identifier column stores (see orders.models).
MAX_TEXT_LENGTH = 255
# Longest status word a network may send (Order.original_status keeps it as sent).
STATUS_WORD_LENGTH = 64
# An integer extra stays within a signed 64-bit integer.
MAX_INTEGER_DIGITS = 18
# Timestamps must convert to UTC within what a MariaDB DATETIME column holds.
MIN_YEAR, MAX_YEAR = 1000, 9999
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


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
    # The status word as the network sent it (stripped, in its own case), which order_status translates;
    # empty when the URL implied the status (Partner.implied_status) and the network sent no word.
    original_status: str
    currency: str
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
    ip: str | None = None
    user_agent: str = ""
    click_time: datetime | None = None
    time_of_order: datetime | None = None
    # What the network sends beyond the fields above, JSON-safe (see Order.extras and Partner.read_extras).
    extras: dict = field(default_factory=dict)


class Partner:
    """A network's parser. A subclass sets the attributes below and implements parse() with the helpers.

    Every attribute is read through `self`, so an instance may carry its own values (a network described
    by data rather than by a subclass).
    """

    slug: str
    name: str
    # The network's status words, lower-case, each mapped to ours, matched ignoring case. Complete and
    # explicit: a word that is also one of ours maps only if listed, and may map elsewhere (Admitad's
    # "pending" is our waiting, ePN's our pending).
    statuses: dict[str, OrderStatus]
    # The parameter that carries the status word; None for a network whose every URL implies a status.
    status_parameter: str | None = "order_status"
    # The status that the URL called implies, for a network that fires one URL per event (ActionPay:
    # created, accepted, rejected): status() answers it without reading a word. Set on a copy by implying().
    implied_status: OrderStatus | None = None
    # The zone of times sent without an offset.
    timezone: str = "UTC"
    # Forms a time may come in, tried in order: strptime formats, ISO_8601 and UNIX_SECONDS.
    timestamp_formats: tuple[str, ...] = ("%Y-%m-%d %H:%M:%S",)
    # Between the whole and the fractional part of an amount: "." or ",".
    decimal_separator: str = "."
    # The currency codes accepted; None: any ISO 4217-shaped code (three letters, taken in upper case).
    currencies: tuple[str, ...] | None = None
    # The currency of a postback without one; None: the currency is required.
    default_currency: str | None = None
    # The values kept beyond the common fields (see Extra).
    extra_fields: tuple[Extra, ...] = ()
    # The parameters of a postback, in the order of the URL to paste into the network's dashboard,
    # each named after the network's macro for it.
    parameters: tuple[str, ...] = ()
    # The network's macro syntax, the text (before, after) a macro's name, e.g. ("[[[", "]]]") for
    # Admitad's [[[admitad_id]]]. None for a network that appends its own parameters to the URL it is
    # given: the URL to paste is then the bare webhook URL.
    macro: tuple[str, str] | None = None
    # A postback that parses: dev_login's curl, the README and the contract tests use it.
    example: dict[str, str]
    # The network's API client (a partners.api.ApiClient subclass); None: the network is not reconciled.
    api_client: type | None = None
    # Where an API record keeps each postback parameter: {parameter: paths}, each path a key or dotted keys
    # ("attributes.order_number"), the first that holds a value winning. A parameter left out is empty.
    api_fields: dict[str, tuple[str, ...]] = {}
    # The parameter of api_fields that holds the record's id (uniq_id); a record without one is malformed.
    api_id_parameter: str = "uniq_id"
    # The status words of the API's records, where they are not the postback's (`statuses`): the same
    # rules, complete and explicit. None: the API uses the postback's words.
    api_statuses: dict[str, OrderStatus] | None = None

    def parse(self, params: dict[str, str]) -> ParsedOrder:
        raise NotImplementedError

    def implying(self, status: str) -> "Partner":
        """This partner, for a postback whose URL implies `status` (its token says which event fired)."""
        partner = copy.copy(self)
        partner.implied_status = OrderStatus(status)
        return partner

    def read_api_record(self, record: dict) -> ParsedOrder:
        """What one record of the network's API says, read exactly as its postback would be (with
        `api_statuses` for the status word); PayloadError for a malformed record, naming the record's field."""
        if not self.api_fields:
            raise PayloadError(f"{self.name}'s API records cannot be read: it has no api_fields")
        if not isinstance(record, dict):
            raise PayloadError("the record is not a JSON object")
        params = self.api_params(record)
        if not params.get(self.api_id_parameter):
            paths = self.api_fields[self.api_id_parameter]
            raise PayloadError(f"the record has no id ({' or '.join(paths)})", paths[0])
        try:
            return self._api_reader.parse(params)
        except PayloadError as error:
            paths = self.api_fields.get(error.field or "")
            if not paths:
                raise
            raise PayloadError(f"{error.message} (in the record: {' or '.join(paths)})", paths[0]) from None

    def api_params(self, record: dict) -> dict[str, str]:
        """An API record as the parameters of a postback (see api_fields), each value as text."""
        params = {}
        for parameter, paths in self.api_fields.items():
            for path in paths:
                value = wire_text(_at(record, path), path)
                if value:
                    params[parameter] = value
                    break
        return params

    def api_record_id(self, record) -> str:
        """The id of the order event an API record is (our uniq_id), or "" when it has none it can read."""
        try:
            return self.api_params(record).get(self.api_id_parameter, "").strip() if isinstance(record, dict) else ""
        except PayloadError:
            return ""

    @cached_property
    def _api_reader(self) -> "Partner":
        """This partner, with the API's status words in place of the postback's."""
        if self.api_statuses is None:
            return self
        reader = copy.copy(self)
        reader.statuses = self.api_statuses
        return reader

    def postback_url(self, webhook_url: str) -> str:
        """The URL to paste into the network's dashboard, for our `webhook_url` (with its token): every
        parameter as `name=<its macro>`, on one line, or the bare URL if the network appends its own."""
        if self.macro is None:
            return webhook_url
        before, after = self.macro
        return webhook_url + "?" + "&".join(f"{name}={before}{name}{after}" for name in self.parameters)

    # --- helpers for parse(); each raises PayloadError in plain words, naming the field -------------

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

    def status(self, params: dict[str, str]) -> tuple[str, str]:
        """Our status for the network's word in `status_parameter`, and that word as sent (stripped).

        A status implied by the URL is answered as it is, with no word: the network sent none, and a
        word it sends anyway is not read (it stays in the raw payload).
        """
        if self.implied_status is not None:
            return self.implied_status, ""
        name = self.status_parameter
        if name is None:
            raise PayloadError("this network's status is implied by the URL it calls, and this URL implies none",
                               "token")
        word = self.text(params, name, required=True, max_length=STATUS_WORD_LENGTH)
        status = self.statuses.get(word.lower())
        if status is None:
            accepted = ", ".join(sorted(self.statuses))
            raise PayloadError(f"{name} {word[:40]!r} is not a known status (accepted: {accepted})", name)
        return status, word

    def money(self, params: dict[str, str], name: str) -> Decimal | None:
        raw = self.text(params, name)
        if not raw:
            return None
        separator = self.decimal_separator
        if not _PLAIN_DECIMAL[separator].fullmatch(raw):
            raise PayloadError(
                f"{name} {raw[:40]!r} is not a plain non-negative number like 1500{separator}50", name)
        integer, _, fraction = raw.partition(separator)
        if len(fraction) > MONEY_DECIMAL_PLACES:
            raise PayloadError(f"{name} has more than {MONEY_DECIMAL_PLACES} decimal places", name)
        if len(integer.lstrip("0")) > MONEY_INTEGER_DIGITS:
            raise PayloadError(f"{name} is too large", name)
        return Decimal(f"{integer}.{fraction}" if fraction else integer)

    def currency(self, params: dict[str, str], name: str = "currency") -> str:
        raw = self.text(params, name)
        if not raw:
            if self.default_currency is None:
                raise PayloadError(f"{name} is required", name)
            return self.default_currency
        code = raw.upper() if raw.isascii() else raw  # "ı".upper() is an ASCII "I"
        if self.currencies is None:
            if not CURRENCY_CODE.fullmatch(code):
                raise PayloadError(f"{name} {raw[:40]!r} is not a currency code of three letters like RUB", name)
        elif code not in self.currencies:
            raise PayloadError(f"{name} {raw[:40]!r} is not one of {', '.join(self.currencies)}", name)
        return code

    def integer(self, params: dict[str, str], name: str) -> int | None:
        raw = self.text(params, name)
        if not raw:
            return None
        if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_INTEGER_DIGITS:
            raise PayloadError(f"{name} {raw[:40]!r} is not a whole number", name)
        return int(raw)

    def boolean(self, params: dict[str, str], name: str) -> bool | None:
        raw = self.text(params, name)
        if not raw:
            return None
        value = _BOOLEANS.get(raw.lower())
        if value is None:
            raise PayloadError(f"{name} {raw[:40]!r} is not one of 1, 0, true, false, yes, no", name)
        return value

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
        """A timezone-aware time in one of `timestamp_formats`; `timezone` applies where it has no offset."""
        raw = self.text(params, name)
        if not raw:
            return None
        moment = self._read_time(raw)
        if moment is None:
            forms = " or ".join(describe_timestamp_format(form) for form in self.timestamp_formats)
            raise PayloadError(f"{name} {raw[:40]!r} is not a date and time in the form {forms}", name)
        # Times are stored in UTC, in a column that holds the years 1000-9999 (MariaDB DATETIME).
        try:
            year = moment.astimezone(UTC).year
        except OverflowError:
            year = 0
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise PayloadError(f"{name} {raw[:40]!r} is outside the years {MIN_YEAR}-{MAX_YEAR}", name)
        return moment

    def _read_time(self, raw: str) -> datetime | None:
        for form in self.timestamp_formats:
            try:
                if form == ISO_8601:
                    if _ISO_8601.fullmatch(raw):
                        return datetime.fromisoformat(raw)
                elif form == UNIX_SECONDS:
                    if _UNIX_SECONDS.fullmatch(raw):
                        return datetime.fromtimestamp(int(raw), UTC)
                else:
                    moment = datetime.strptime(raw, form)
                    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(self.timezone))
            except (ValueError, OverflowError, OSError):
                continue
        return None

    def read_extras(self, params: dict[str, str]) -> dict:
        """The values of `extra_fields` that were sent, by name, typed by their kind (JSON-safe)."""
        extras = {}
        for extra in self.extra_fields:
            value = self._read_extra(params, extra)
            if value is not None and value != "":
                if extra.choices and value not in {choice for choice, _label in extra.choices}:
                    allowed = ", ".join(str(choice) for choice, _label in extra.choices)
                    raise PayloadError(f"{extra.name} {str(value)[:40]!r} is not one of {allowed}", extra.name)
                extras[extra.name] = value
        return extras

    def _read_extra(self, params: dict[str, str], extra: Extra) -> str | int | bool | None:
        if extra.kind == ExtraKind.TEXT:
            return self.text(params, extra.name)
        if extra.kind == ExtraKind.INTEGER:
            return self.integer(params, extra.name)
        if extra.kind == ExtraKind.BOOLEAN:
            return self.boolean(params, extra.name)
        if extra.kind == ExtraKind.TIMESTAMP:
            moment = self.timestamp(params, extra.name)
            return moment.isoformat() if moment else None
        if extra.kind == ExtraKind.IP:
            return self.ip(params, extra.name)
        if extra.kind == ExtraKind.IPV6:
            return self.ip(params, extra.name, version=6)
        raise ValueError(f"extra {extra.name} of {self.slug} has an unknown kind {extra.kind!r}")


def wire_text(value, name: str) -> str:
    """A value of an API record as a postback would carry it: text as it is, a number in its exact digits,
    null as empty. PayloadError for anything else (a yes/no, an object, a list), naming the field."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise PayloadError(f"{name} is {type(value).__name__}, not a text or a number", name)


def _at(record: dict, path: str):
    """record["a"]["b"] for the path "a.b"; None where a part is missing."""
    value = record
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def describe_timestamp_format(form: str) -> str:
    """A timestamp form in the words of a message: 'YYYY-MM-DD HH:MM:SS', 'Unix seconds'."""
    if form in _FORMAT_WORDS:
        return _FORMAT_WORDS[form]
    for directive, words in _STRPTIME_WORDS.items():
        form = form.replace(directive, words)
    return form
