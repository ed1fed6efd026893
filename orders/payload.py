"""Turning a stored request (query string, body, content type) into a partner's parameters.

Pure functions: the same code runs for a live request, a spool entry and a replay, so a delivery
replayed after a fix is read exactly as the live request would be.
"""

import email.policy
import json
import re
from email.parser import BytesParser
from urllib.parse import parse_qsl

from partners.base import PayloadError

# The headers of a multipart part, like the content type, may take this many bytes (what Django's own
# multipart parser allows: MAX_TOTAL_HEADER_SIZE) and parameters. A form field needs under a hundred
# bytes and one or two parameters (name, filename). The email module splits parameters in Python, once
# per lookup: without a bound a 64 KiB body of ";" costs a tenth of a second, a single such header
# seconds (the time grows with the square of its length).
MAX_HEADER_BYTES = 1024
MAX_HEADER_PARAMETERS = 8
# A part that is itself a multipart (no form sends one): the email parser checks every line of a nested
# part against the boundaries of every enclosing level, quadratic in the depth.
_NESTED_MULTIPART = re.compile(rb"^content-type:\s*multipart/", re.IGNORECASE | re.MULTILINE)


def payload_params(query_string: str, body: bytes, content_type: str) -> dict[str, str]:
    """Merge the query string and the body into one flat dict of strings.

    A POST may carry its parameters in the query string, a form body, a JSON object, or both a
    query string and a body. A parameter repeated with different values is ambiguous and rejected:
    guessing which amount is right is how cashback gets paid wrongly.
    """
    pairs = _pairs(query_string, "query string")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if body.strip():
        if media_type == "application/json":
            pairs += _json_pairs(body)
        elif media_type in ("application/x-www-form-urlencoded", ""):
            pairs += _pairs(_decode(body, "body"), "body")
        elif media_type == "multipart/form-data":
            pairs += _multipart_pairs(body, content_type)
        else:
            raise PayloadError(
                f"unsupported content type {media_type[:60]!r}: send a query string, a form or a JSON object",
                "content_type",
            )
    params: dict[str, str] = {}
    for key, value in pairs:
        if not _is_encodable(key) or not _is_encodable(value):
            raise PayloadError("a parameter contains text that is not valid Unicode", "body")
        if key in params and params[key] != value:
            raise PayloadError(f"{key[:40]} is given more than once with different values", key[:64])
        params[key] = value
    return params


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(f"the {what} is not valid UTF-8", what.replace(" ", "_")) from None


def _pairs(encoded: str, what: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(encoded, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise PayloadError(f"the {what} has percent-encoded bytes that are not UTF-8", what.replace(" ", "_")) from None


def _json_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        document = json.loads(_decode(body, "body"), parse_constant=_reject_constant, parse_float=str, parse_int=str,
                              object_pairs_hook=_KeyValuePairs)
    except PayloadError:
        raise
    except (ValueError, RecursionError):
        raise PayloadError("the body is not valid JSON", "body") from None
    if not isinstance(document, _KeyValuePairs):
        raise PayloadError("the JSON body must be an object of parameters", "body")
    pairs = []
    for key, value in document:
        if value is None:
            value = ""
        elif isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, list):
            kind = "object" if isinstance(value, _KeyValuePairs) else "array"
            raise PayloadError(f"{key[:40]} must be a plain value, not a JSON {kind}", key[:64])
        pairs.append((key, value))
    return pairs


class _KeyValuePairs(list):
    """A JSON object as the list of its members, in order and with repeated keys kept, so that
    {"revenue": "1", "revenue": "1000"} is refused like a repeated form field instead of silently
    meaning its last value."""


def _header_text(name: str, value: str) -> str:
    """A header as plain text, its bytes read as UTF-8, as the HTTP policy's header classes read it."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# The HTTP policy with plain-text headers: its own header classes parse every header asked for into a
# syntax tree, which recursed on nested comments (a RecursionError, so a 500, on a few hundred "(") and
# took over a second for one 64 KiB header of parameters. email.message splits the parameters either way.
_FORM_POLICY = email.policy.HTTP.clone(header_factory=_header_text)


def _multipart_pairs(body: bytes, content_type: str) -> list[tuple[str, str]]:
    _check_header_bounds(content_type)
    if _NESTED_MULTIPART.search(body):
        raise PayloadError("multipart parts must be named form fields, not files", "body")
    message = BytesParser(policy=_FORM_POLICY).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body
    )
    pairs = []
    if not message.is_multipart():
        return pairs  # an empty form: only the query string counts
    for part in message.iter_parts():
        _check_header_bounds("".join(name + value for name, value in part.items()))
        name = part.get_param("name", header="content-disposition")
        if not name or part.get_filename():
            raise PayloadError("multipart parts must be named form fields, not files", "body")
        pairs.append((str(name), _decode(part.get_payload(decode=True) or b"", "body")))
    return pairs


def _check_header_bounds(headers: str) -> None:
    if len(headers) > MAX_HEADER_BYTES or headers.count(";") > MAX_HEADER_PARAMETERS:
        raise PayloadError(f"multipart headers are limited to {MAX_HEADER_BYTES} bytes and "
                           f"{MAX_HEADER_PARAMETERS} parameters a part", "body")


def _reject_constant(name: str):
    raise PayloadError(f"{name} is not a number", "body")


def _is_encodable(text: str) -> bool:
    """False for text holding lone surrogates (from JSON escapes), which no database column takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
