"""orders.payload on multipart forms: what senders encode parses exactly, and a hostile form is a quick 400.

(The other body kinds, and every kind on generated input, are in tests/test_fuzz_partners.py.)
"""

import pytest
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from orders.models import Delivery
from orders.payload import MAX_HEADER_BYTES, payload_params
from partners.base import PayloadError
from tests.factories import postback

LIMIT = 64 * 1024  # WEBHOOK_MAX_BODY_BYTES: no body the view reads is longer
FORM = "multipart/form-data; boundary=b0undary"
END = b"--b0undary--\r\n"


def part(headers: bytes, value: bytes = b"1") -> bytes:
    return b"--b0undary\r\n" + headers + b"\r\n\r\n" + value + b"\r\n"


def up_to_the_limit(start: bytes, repeated: bytes, end: bytes) -> bytes:
    """`start`, then `repeated` as often as fits, then `end`: a body of just under 64 KiB."""
    return start + repeated * ((LIMIT - len(start) - len(end)) // len(repeated)) + end


def test_a_form_as_django_and_browsers_encode_it():
    values = {"click_id": "7", "uniq_id": "Ж-1 «x»", "revenue": "100.50", "empty": "", "lines": "a\r\nb",
              "quoted": 'say "hi"'}
    assert payload_params("", encode_multipart(BOUNDARY, values), MULTIPART_CONTENT) == values


@pytest.mark.parametrize("body", [
    part(b'Content-Disposition: form-data; name="\xd1\x81\xd1\x83\xd0\xbc\xd0\xbc\xd0\xb0"', "Ж".encode()) + END,
    part(b'content-disposition: FORM-DATA; NAME="\xd1\x81\xd1\x83\xd0\xbc\xd0\xbc\xd0\xb0"', "Ж".encode()) + END,
    part(b'Content-Disposition: form-data; name=\xd1\x81\xd1\x83\xd0\xbc\xd0\xbc\xd0\xb0\r\n'
         b'Content-Type: text/plain; charset=utf-8', "Ж".encode()) + END,
    part(b'Content-Disposition: form-data; name="\xd1\x81\xd1\x83\xd0\xbc\xd0\xbc\xd0\xb0"\r\n'
         b'Content-Transfer-Encoding: base64', b"0JY=") + END,
    b"preamble\r\n" + part(b'Content-Disposition: form-data; name="\xd1\x81\xd1\x83\xd0\xbc\xd0\xbc\xd0\xb0"',
                           "Ж".encode()) + END + b"epilogue",
], ids=["quoted", "any-case", "token-and-charset", "base64", "preamble"])
def test_field_names_and_values_are_utf8(body):
    assert payload_params("", body, FORM) == {"сумма": "Ж"}


def test_a_comment_within_the_header_bound_is_not_parsed():
    """RFC 5322 comments mean nothing in a form (this name is just odd); the email module's header parser
    recursed into them."""
    body = part(b'Content-Disposition: form-data; name="a" ' + b"(" * 980) + END
    assert list(payload_params("", body, FORM).values()) == ["1"]


@pytest.mark.parametrize("body,content_type", [
    # The email module's header parser recursed once per "(" of a comment: a RecursionError, so a 500.
    pytest.param(up_to_the_limit(b'--b0undary\r\nContent-Disposition: form-data; name="a" ', b"(",
                                 b"\r\n\r\n1\r\n" + END), FORM, id="nested-comments"),
    # One header of parameters: 15 s of CPU for 64 KiB of ";" (the splitting is quadratic), 1 s of "; x=y".
    pytest.param(up_to_the_limit(b'--b0undary\r\nContent-Disposition: form-data; name="a"', b";",
                                 b"\r\n\r\n1\r\n" + END), FORM, id="semicolons"),
    pytest.param(up_to_the_limit(b'--b0undary\r\nContent-Disposition: form-data; name="a"', b"; x=y",
                                 b"\r\n\r\n1\r\n" + END), FORM, id="parameters"),
    # The same spread over parts of 1 KiB each: a tenth of a second.
    pytest.param(up_to_the_limit(b"", part(b'Content-Disposition: form-data; name="a"' + b";" * 900), END), FORM,
                 id="parts-of-semicolons"),
    pytest.param(up_to_the_limit(b"", part(b'Content-Disposition: form-data; name="a"\r\nContent-Type: a' + b";" * 9),
                                 END), FORM, id="parameters-in-the-part-content-type"),
    pytest.param(part(b'Content-Disposition: form-data; name="a"\r\nX: ' + b"y" * MAX_HEADER_BYTES) + END, FORM,
                 id="long-header"),
    pytest.param(part(b'Content-Disposition: form-data; name="a"') + END, FORM + ";" * 9, id="form-content-type"),
    pytest.param(part(b'Content-Disposition: form-data; name="a"') + END, FORM + "; x=" + "y" * MAX_HEADER_BYTES,
                 id="long-form-content-type"),
    # A part that is a multipart itself was read as an empty field; hundreds deep, each line of the body was
    # checked against every enclosing boundary.
    pytest.param(b"".join(b'--n%d\r\nContent-Disposition: form-data; name="a"\r\n'
                          b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n" % (n, n + 1) for n in range(600)),
                 "multipart/form-data; boundary=n0", id="nested-multipart"),
    pytest.param(part(b'Content-Disposition: form-data; name="a"\r\nContent-Type:\r\n multipart/mixed; boundary=c',
                      b"--c\r\n\r\nx\r\n--c--") + END, FORM, id="folded-nested-multipart"),
])
def test_a_hostile_form_is_refused(body, content_type):
    assert len(body) <= LIMIT
    with pytest.raises(PayloadError) as refused:
        payload_params("", body, content_type)
    assert refused.value.field == "body"


@pytest.mark.django_db
def test_a_hostile_form_is_a_400_not_a_500(client, webhook_url):
    body = up_to_the_limit(b'--b0undary\r\nContent-Disposition: form-data; name="a" ', b"(", b"\r\n\r\n1\r\n" + END)
    client.raise_request_exception = False
    response = client.post(f"{webhook_url}?{'&'.join(f'{k}={v}' for k, v in postback().items())}", body,
                           content_type=FORM)
    assert response.status_code == 400 and response.json()["field"] == "body"
    assert Delivery.objects.get().outcome == "invalid"
