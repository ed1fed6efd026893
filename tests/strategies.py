"""Hypothesis strategies for hostile postbacks, shared by the parser and the endpoint fuzz tests.

Values are built around the parameters each partner declares, starting from its valid example
postback and breaking it: so that the fuzz reaches the success path as well as every rejection,
rather than only ever failing at the first required field.
"""

import json
from urllib.parse import quote_from_bytes, urlencode

from hypothesis import strategies as st

from partners.base import OrderStatus, ParsedOrder, Partner
from partners.configured import LEDGER_FIELDS, FieldKind
from partners.registry import PARTNERS

# Every parameter name any partner reads, and the ledger's own field names.
FIELD_NAMES = tuple(sorted(set(ParsedOrder.__dataclass_fields__).union(*(p.parameters for p in PARTNERS.values()))))
# What each parameter holds, whichever network names it so.
MONEY_FIELDS = ("revenue", "commission_fee", "payment_sum", "order_sum")
INTEGER_FIELDS = ("type_id", "website_id")
TIME_FIELDS = ("click_time", "time_of_order", "time", "conversion_time")
IP_FIELDS = ("ip", "ipv6", "action_ip")
STATUS_FIELDS = tuple(sorted({p.status_parameter for p in PARTNERS.values() if p.status_parameter}))
BOOLEAN_FIELDS = ("reward_ready",)
STATUSES = tuple(sorted(set(OrderStatus.values).union(*(p.statuses for p in PARTNERS.values()))))
CURRENCIES = tuple(sorted({"KZT", "BTC", "rub"}.union(*(p.currencies or () for p in PARTNERS.values()))))

# Any text Hypothesis can make, including controls, NUL, combining marks and astral characters.
any_text = st.text(max_size=40) | st.text(st.characters(codec="utf-8"), min_size=250, max_size=300)

numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(repr),
    st.from_regex(r"-?[0-9]{0,30}(\.[0-9]{0,15})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
    st.sampled_from([
        "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "1e999", "-0", "-1500", "0x10", "1_000", "١٢٣",
        "1,5", "+5", "5.", ".5", "0.0000000001", "9" * 16, "9" * 15 + "." + "9" * 9, " 100 ", "1" * 5000,
    ]),
)


def _timestamp(parts: tuple[int, int, int, int, int, int]) -> str:
    return "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}".format(*parts)


def _dotted(parts: tuple[int, int, int, int, int, int]) -> str:
    year, month, day, hour, minute, second = parts
    return f"{day:02d}.{month:02d}.{year:04d} {hour:02d}:{minute:02d}:{second:02d}"


def _iso(parts: tuple[int, int, int, int, int, int], offset: str) -> str:
    return _timestamp(parts).replace(" ", "T") + offset


datetime_parts = st.datetimes().map(lambda d: (d.year, d.month, d.day, d.hour, d.minute, d.second))
# Days, hours and seconds that do not exist (Feb 30, hour 24, year 0 ...).
impossible_parts = st.tuples(*(st.integers(0, top) for top in (10000, 13, 32, 25, 61, 61)))
offsets = st.sampled_from(["Z", "+03:00", "-12:00", "+14:00", "+0530", "+23:59", "-99:00", "+24:00", "z", ""])

timestamps = st.one_of(
    (datetime_parts | impossible_parts).map(_timestamp),
    (datetime_parts | impossible_parts).map(_dotted),
    st.builds(_iso, datetime_parts | impossible_parts, offsets),
    st.integers(-(10**3), 10**13).map(str),  # Unix seconds, up to the year 318857
    st.sampled_from([
        "2024-02-30 10:00:00", "2023-02-29 00:00:00", "0000-00-00 00:00:00", "2024-01-01 24:00:00",
        "2024-01-01T10:00:00", "2010-03-28 02:30:00", "2014-10-26 01:30:00", "0001-01-01 00:00:00",
        "0999-12-31 23:59:59", "1000-01-01 00:00:00", "9999-12-31 23:59:59", "2024-1-1 1:1:1",
        "0001-01-01T00:00:00+03:00", "9999-12-31T23:59:59-01:00", "253402300799", "253402300800", "-1",
        "1e9", "１７７２３５７４００", "01.01.0999 00:00:00", "31.12.9999 23:59:59",
    ]),
    any_text,
)

ip_texts = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from([
        "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "fe80::1%eth0", "fe80::1%" + "x" * 60, "::ffff:1.2.3.4",
        "1.2.3.4/24", "::", "[::1]", "1.2.3.4:80", " 1.2.3.4 ", "::1::", "1.2.3.4, 5.6.7.8", "localhost",
    ]),
    any_text,
)


# What a configured network's parameter carries, by the ledger field it is mapped to.
_KINDS = {ledger_field.name: ledger_field.kind for ledger_field in LEDGER_FIELDS}


def value_for(name: str, partner: Partner | None = None) -> st.SearchStrategy[str]:
    """Values for parameter `name`: what it holds under a built-in partner's name for it, or under
    `partner`'s mapping when that is a configured network."""
    kind = next((_KINDS[ledger] for ledger, parameter in getattr(partner, "fields", {}).items() if parameter == name),
                None)
    if name in MONEY_FIELDS or name in INTEGER_FIELDS or kind == FieldKind.MONEY:
        return numbers
    if name in TIME_FIELDS or kind == FieldKind.TIMESTAMP:
        return timestamps
    if name in IP_FIELDS or kind == FieldKind.IP:
        return ip_texts
    if name in STATUS_FIELDS or (partner is not None and name == partner.status_parameter):
        return st.sampled_from(STATUSES) | st.sampled_from(STATUSES).map(str.upper) | any_text
    if name == "currency" or kind == FieldKind.CURRENCY:
        return st.sampled_from(CURRENCIES) | st.from_regex(r"[A-Za-z]{3}", fullmatch=True) | any_text
    if name in BOOLEAN_FIELDS:
        return st.sampled_from(["1", "0", "true", "FALSE", "Yes", "no", "2", "on", "-1"]) | any_text
    return st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True) | any_text


@st.composite
def params(draw, partner: Partner | None = None) -> dict[str, str]:
    """A postback's parameters for `partner` (EPN.bz's by default): its example with a fresh unique id and
    any of its status words, then some parameters broken, dropped or added."""
    partner = partner or PARTNERS["epn_bz"]
    result = dict(partner.example)
    # The example's unique id, wherever the network puts it, made fresh: the endpoint's fuzz then creates
    # orders as well as duplicates.
    uniq_id = partner.parse(result).uniq_id
    for name, value in result.items():
        if value == uniq_id:
            result[name] = f"U{draw(st.integers(0, 10**9))}"
    if partner.statuses:
        result[partner.status_parameter] = draw(st.sampled_from(sorted(partner.statuses)))
    names = st.sampled_from(sorted(set(partner.parameters) | set(FIELD_NAMES)))
    for name in draw(st.sets(names, max_size=6)):
        result[name] = draw(value_for(name, partner))
    for name in draw(st.sets(names, max_size=2)):
        result.pop(name, None)
    result.update(draw(st.dictionaries(any_text, any_text, max_size=2)))
    return result


def _percent(data: bytes) -> str:
    return quote_from_bytes(data, safe="=&")


# Encoded forms of a parameter dict, as bytes on the wire (a query string or a form body).
@st.composite
def form_encoded(draw, values: dict[str, str] | None = None) -> bytes:
    values = draw(params()) if values is None else values
    kind = draw(st.sampled_from(["plain", "repeated-same", "repeated-different", "raw-bytes", "garbage"]))
    if kind == "plain":
        return urlencode(values).encode()
    if kind == "repeated-same":
        name = draw(st.sampled_from(sorted(values)))
        return (urlencode(values) + "&" + urlencode({name: values[name]})).encode()
    if kind == "repeated-different":
        name = draw(st.sampled_from(FIELD_NAMES))
        return (urlencode(values) + "&" + urlencode({name: draw(value_for(name))})).encode()
    if kind == "raw-bytes":
        # Percent-encoded bytes that may not be UTF-8 (%FF, a cut multi-byte sequence ...).
        name = draw(st.sampled_from(FIELD_NAMES))
        return (urlencode(values) + f"&{name}=" + _percent(draw(st.binary(max_size=30)))).encode()
    return draw(st.binary(max_size=200) | st.sampled_from([b"&&&", b"=", b"==&=", b";;", b"%", b"%zz", b"a=%E2%82"]))


@st.composite
def json_bodies(draw, values: dict[str, str] | None = None) -> bytes:
    values = draw(params()) if values is None else values
    kind = draw(st.sampled_from(["object", "numbers", "duplicate", "nested", "not-object", "surrogate", "broken"]))
    if kind == "object":
        return json.dumps(values, ensure_ascii=draw(st.booleans())).encode()
    if kind == "numbers":
        # Amounts as JSON numbers and constants: 1e400, NaN, Infinity, -5, huge integers.
        values = {**values, **{name: draw(st.floats() | st.integers()) for name in MONEY_FIELDS}}
        return json.dumps(values, allow_nan=True).encode()
    if kind == "duplicate":
        name = draw(st.sampled_from(FIELD_NAMES))
        text = json.dumps(values)[:-1] + f', "{name}": ' + json.dumps(draw(value_for(name))) + "}"
        return text.encode()
    if kind == "nested":
        name = draw(st.sampled_from(FIELD_NAMES))
        inner = draw(st.lists(st.integers()) | st.dictionaries(st.text(), st.text()))
        return json.dumps({**values, name: inner}).encode()
    if kind == "not-object":
        document = draw(st.lists(st.text()) | st.text() | st.integers() | st.none() | st.booleans() | st.floats())
        return json.dumps(document).encode()
    if kind == "surrogate":
        return b'{"click_id": "\\ud800", "order_number": "x", "order_status": "waiting"}'
    return draw(st.sampled_from([b"{", b"[1,", b'{"a": }', b"\xff\xfe{}", b"[" * 5000, b"{}"]) | st.binary(max_size=50))


@st.composite
def multipart_bodies(draw, values: dict[str, str] | None = None) -> tuple[bytes, str]:
    values = draw(params()) if values is None else values
    boundary = draw(st.sampled_from(["BoUnDaRy", "x", "----abc123"]))
    parts = []
    for name, value in values.items():
        disposition = f'form-data; name="{name}"'
        if draw(st.integers(0, 20)) == 0:
            disposition += '; filename="a.txt"'
        part = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n{value}\r\n"
        parts.append(part.encode("utf-8", "replace"))
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]  # cut anywhere
    declared = draw(st.sampled_from([boundary, "other", ""]))
    return body, f"multipart/form-data; boundary={declared}" if declared else "multipart/form-data"


CONTENT_TYPES = ("application/x-www-form-urlencoded", "application/json", "multipart/form-data", "text/plain",
                 "application/xml", "application/octet-stream", "", "APPLICATION/JSON; charset=utf-8",
                 "application/x-www-form-urlencoded; charset=windows-1251", "application/json;;;", "\x00/\x7f")


@st.composite
def bodies(draw, values: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A body and the content type it is sent with, which may be the wrong one."""
    kind = draw(st.sampled_from(["form", "json", "multipart", "random", "empty"]))
    if kind == "multipart":
        return draw(multipart_bodies(values))
    if kind in ("form", "json"):
        body = draw((form_encoded if kind == "form" else json_bodies)(values))
    else:
        body = b"" if kind == "empty" else draw(st.binary(max_size=300))
    right = {"form": "application/x-www-form-urlencoded", "json": "application/json"}.get(kind, "text/plain")
    content_type = draw(st.just(right) | st.sampled_from(CONTENT_TYPES) | st.text(max_size=30))
    return body, content_type
