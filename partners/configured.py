"""Networks described by staff in the admin rather than in code: their description as data, and the
parser built from it.

A NetworkConfig is what a partners.models.Network row says of a network's postbacks, as plain data (it
is also what the snapshot file keeps, see partners.snapshot); ConfiguredPartner is the Partner it
describes. It reads the parameters mapped to the ledger's fields with the same helpers, and so the same
rules and PayloadErrors, as a built-in parser: Decimal money with the network's separator, times in its
forms and zone, its status words ignoring case. Parameters that are not mapped stay in the order's raw
payload; a configured network keeps no extras.
"""

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.db.models import TextChoices
from django.utils.translation import gettext_lazy as _

from .base import ISO_8601, MAX_TEXT_LENGTH, UNIX_SECONDS, OrderStatus, ParsedOrder, Partner


class FieldKind(TextChoices):
    """How a ledger field's parameter is read."""

    TEXT = "text"
    LONG_TEXT = "long_text"  # a user agent: up to 1024 characters
    MONEY = "money"
    CURRENCY = "currency"
    IP = "ip"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True)
class LedgerField:
    name: str  # a ParsedOrder field
    label: str
    kind: str = FieldKind.TEXT
    required: bool = False


# The ledger's fields a network's parameter may carry, in the order of the URL to paste. The status is
# not among them: it is a word translated by the network's status map (or implied by the URL).
LEDGER_FIELDS = (
    LedgerField("uniq_id", _("unique id"), required=True),
    LedgerField("click_id", _("click id (user)"), required=True),
    LedgerField("order_number", _("order number")),
    LedgerField("revenue", _("revenue"), FieldKind.MONEY),
    LedgerField("commission_fee", _("commission"), FieldKind.MONEY),
    LedgerField("currency", _("currency"), FieldKind.CURRENCY),
    LedgerField("offer_id", _("offer id")),
    LedgerField("offer_name", _("offer name")),
    LedgerField("sub", "sub"),
    LedgerField("sub2", "sub2"),
    LedgerField("sub3", "sub3"),
    LedgerField("sub4", "sub4"),
    LedgerField("sub5", "sub5"),
    LedgerField("ip", _("click IP"), FieldKind.IP),
    LedgerField("user_agent", _("click user agent"), FieldKind.LONG_TEXT),
    LedgerField("click_time", _("click time"), FieldKind.TIMESTAMP),
    LedgerField("time_of_order", _("time of order"), FieldKind.TIMESTAMP),
)
REQUIRED_FIELDS = tuple(ledger_field.name for ledger_field in LEDGER_FIELDS if ledger_field.required)


class DateFormat(TextChoices):
    """The forms a configured network's times may come in (Partner.timestamp_formats)."""

    YMD = "ymd", "YYYY-MM-DD HH:MM:SS"
    DMY = "dmy", "DD.MM.YYYY HH:MM:SS"
    ISO = "iso8601", _("ISO 8601 with an offset (2026-03-01T12:30:00+03:00)")
    UNIX = "unix", _("Unix seconds (1772357400)")
    ANY = "any", _("any of these")


_YMD, _DMY = "%Y-%m-%d %H:%M:%S", "%d.%m.%Y %H:%M:%S"
TIMESTAMP_FORMATS = {
    DateFormat.YMD: (_YMD,),
    DateFormat.DMY: (_DMY,),
    DateFormat.ISO: (ISO_8601,),
    DateFormat.UNIX: (UNIX_SECONDS,),
    DateFormat.ANY: (_YMD, ISO_8601, _DMY, UNIX_SECONDS),
}

# The word in a macro syntax that stands for the parameter's name.
MACRO_NAME = "name"


class MacroSyntax(TextChoices):
    """How a network's dashboard writes a macro (Partner.macro), with MACRO_NAME for its name."""

    BRACES = "{name}", "{name}"
    TRIPLE_BRACKETS = "[[[name]]]", "[[[name]]]"
    DOUBLE_BRACES = "{{name}}", "{{name}}"
    PERCENT = "%name%", "%name%"
    DOLLAR = "$name", "$name"
    NONE = "none", _("none: the network appends its own parameters")


@dataclass(frozen=True)
class NetworkConfig:
    """A configured network, as data: JSON-safe (to_json, from_json), compared by value."""

    slug: str
    name: str
    # Ledger field (a LEDGER_FIELDS name) -> the parameter that carries it; only the mapped ones.
    parameters: dict[str, str]
    # The parameter that carries the status word; "" when every URL of the network implies a status.
    status_parameter: str
    # The network's status word (lower case) -> ours.
    statuses: dict[str, str]
    timezone: str = "UTC"
    date_format: str = DateFormat.ANY
    decimal_separator: str = "."
    # The currency of a postback without one; "" when the currency parameter is required.
    default_currency: str = ""
    macro: str = MacroSyntax.BRACES

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "NetworkConfig":
        return cls(**data)


# What the example postback of a configured network carries, per ledger field (money and times are
# written in the network's own form).
_EXAMPLE_TEXT = {"uniq_id": "1001", "click_id": "123", "order_number": "SHOP-1001", "offer_id": "12345",
                 "offer_name": "Shop", "sub": "s1", "sub2": "s2", "sub3": "s3", "sub4": "s4", "sub5": "s5",
                 "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"}
_EXAMPLE_MONEY = {"revenue": ("1500", "00"), "commission_fee": ("75", "50")}
_EXAMPLE_TIME = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


class ConfiguredPartner(Partner):
    """The parser of a network described by a NetworkConfig; every knob is set on the instance."""

    # Any ISO 4217-shaped code, as the network's advertisers pay in.
    currencies = None
    extra_fields = ()

    def __init__(self, config: NetworkConfig):
        """Raises KeyError or ValueError for a description that cannot parse every postback (the admin's
        validation, partners.models.Network.clean, refuses those)."""
        self.config = config
        missing = [name for name in REQUIRED_FIELDS if not config.parameters.get(name)]
        if missing or not (config.parameters.get("currency") or config.default_currency):
            raise ValueError(f"not mapped: {', '.join(missing) or 'currency'}")
        ZoneInfo(config.timezone)
        self.slug, self.name = config.slug, config.name
        self.fields = dict(config.parameters)
        self.status_parameter = config.status_parameter or None
        self.statuses = {word: OrderStatus(status) for word, status in config.statuses.items()}
        self.timezone = config.timezone
        self.timestamp_formats = TIMESTAMP_FORMATS[config.date_format]
        self.decimal_separator = config.decimal_separator
        self.default_currency = config.default_currency or None
        self.macro = None if config.macro == MacroSyntax.NONE else tuple(config.macro.split(MACRO_NAME))
        self.parameters = self._parameters()
        self.example = self._example()

    def parse(self, params: dict[str, str]) -> ParsedOrder:
        # The key and whom to credit first, then the status: the order in which a built-in parser complains.
        uniq_id = self.text(params, self.fields["uniq_id"], required=True)
        click_id = self.text(params, self.fields["click_id"], required=True)
        order_status, original_status = self.status(params)
        values = {ledger_field.name: self._read(params, ledger_field) for ledger_field in LEDGER_FIELDS
                  if not ledger_field.required}
        return ParsedOrder(uniq_id=uniq_id, click_id=click_id, order_status=order_status,
                           original_status=original_status, **values)

    def _read(self, params: dict[str, str], ledger_field: LedgerField):
        name = self.fields.get(ledger_field.name)
        kind = ledger_field.kind
        if kind == FieldKind.CURRENCY:
            # Unmapped, the network's default is the currency of every postback (the form requires one).
            return self.currency(params, name) if name else self.default_currency
        if name is None:
            return None if kind in (FieldKind.MONEY, FieldKind.IP, FieldKind.TIMESTAMP) else ""
        if kind == FieldKind.MONEY:
            return self.money(params, name)
        if kind == FieldKind.IP:
            return self.ip(params, name)
        if kind == FieldKind.TIMESTAMP:
            return self.timestamp(params, name)
        return self.text(params, name, max_length=1024 if kind == FieldKind.LONG_TEXT else MAX_TEXT_LENGTH)

    def _parameters(self) -> tuple[str, ...]:
        """Every mapped parameter once, in the ledger's order, the status word's after the click id."""
        names = [self.fields.get(ledger_field.name) for ledger_field in LEDGER_FIELDS]
        names.insert(len(REQUIRED_FIELDS), self.status_parameter)
        return tuple(dict.fromkeys(name for name in names if name))

    def _example(self) -> dict[str, str]:
        """A postback that parses: the admin's "Try a postback" and the contract tests start from it."""
        example = {}
        separator = self.decimal_separator
        for ledger_field in LEDGER_FIELDS:
            name = self.fields.get(ledger_field.name)
            if not name or name in example:
                continue
            if ledger_field.name in _EXAMPLE_MONEY:
                whole, fraction = _EXAMPLE_MONEY[ledger_field.name]
                example[name] = f"{whole}{separator}{fraction}"
            elif ledger_field.kind == FieldKind.CURRENCY:
                example[name] = self.default_currency or "RUB"
            elif ledger_field.kind == FieldKind.TIMESTAMP:
                example[name] = self._example_time()
            else:
                example[name] = _EXAMPLE_TEXT[ledger_field.name]
        if self.status_parameter and self.statuses:
            # The network's first word for the earliest of our statuses that it has a word for.
            order = {status: rank for rank, status in enumerate(OrderStatus)}
            example[self.status_parameter] = min(self.statuses, key=lambda word: order[self.statuses[word]])
        return example

    def _example_time(self) -> str:
        form = self.timestamp_formats[0]
        if form == UNIX_SECONDS:
            return str(int(_EXAMPLE_TIME.timestamp()))
        local = _EXAMPLE_TIME.astimezone(ZoneInfo(self.timezone))
        return local.isoformat() if form == ISO_8601 else local.strftime(form)
