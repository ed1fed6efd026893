"""The service's real output, as production runs it: gunicorn with gunicorn.conf.py and the production
settings (tests/live_service.py), stdout and stderr together, in both LOG_FORMATs.

Requests are sent over a raw socket, byte for byte: near misses of the webhook URL (the prefix in
another case or with doubled slashes, quotes and spaces around the token, the token in another case or
percent-encoded, generated variants of all these), raw UTF-8 bytes in the request line (which gunicorn
refuses itself, quoting the line in its log and in its 400 page), the token in other paths, queries
and headers, and a path with an encoded newline that would forge an access line. Then:
- no token appears in the output or in any error page, in any case, percent-encoded or not;
- every line is one log line in one format, its time in UTC with the offset written out, gunicorn's
  lines as the application's;
- no line was forged;
- each kind of near miss got a warning naming the partner and the mistake.
"""

import json
import random
import re
import socket
from urllib.parse import quote, unquote

import pytest

from tests.live_service import TOKEN, Service, migrate, production_env

FORGED_TIME = "2027-01-15T08:00:00.000+00:00"
FORGED = f'{FORGED_TIME} INFO gunicorn.access 203.0.113.9 "GET /admin/" 200 1 1ms'
UTC_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00"
TEXT_LINE = re.compile(UTC_TIME + r" (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ .*")
MISTAKES = ("'webhook' in the wrong case", "a doubled slash", "stray characters around the token",
            "more path after the token", "the token in the wrong case")
POSTBACK = "click_id=7&order_number=N-1&uniq_id=LIVE-LOG-1&order_status=waiting&revenue=100.50&commission_fee=7.25"


def percent_encoded(text: str, rng: random.Random, share: float) -> str:
    return "".join(f"%{ord(c):02X}" if rng.random() < share else c for c in text)


def random_case(text: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def requests() -> list[bytes]:
    """The request lines to send, as raw bytes."""
    token = TOKEN.encode()
    targets = [
        f"/webhook/{TOKEN}?{POSTBACK}",  # a valid postback: the token is in use
        f"/Webhook/{TOKEN}?{POSTBACK}", f"/WEBHOOK/{TOKEN}/", f"/webhook//{TOKEN}", f"//webhook/{TOKEN}",
        f"/webhook/{TOKEN}//", f"/webhook/%20{TOKEN}", f"/webhook/%22{TOKEN}", f"/webhook/{TOKEN}%22",
        f"/webhook/%27{TOKEN}%27", f"/webhook/%3C{TOKEN}%3E", f"/webhook/{TOKEN}/postback",
        f"/webhook/{TOKEN.upper()}", f"/webhook/{TOKEN.swapcase()}", f"/Webhook/{quote(TOKEN, safe='')}%0A",
        f"/webhook/{''.join(f'%{ord(c):02x}' for c in TOKEN)}", f"/static/{TOKEN}", f"/static/{TOKEN.upper()}",
        f"/health?token={TOKEN}", f"/admin/?next=/webhook/{TOKEN}", f"http://127.0.0.1/Webhook/{TOKEN}",
        "/static/x%0A" + quote(FORGED), "/admin/%0D%0A" + quote(FORGED),
    ]
    rng = random.Random(20261128)
    for _ in range(60):
        stray = ["", "%20", "%22", "%27", "%3C", "%3E", "%60", "%7B", "%09", "%5C"]
        targets.append("/" * rng.randint(1, 3) + random_case("webhook", rng) + "/" * rng.randint(1, 2)
                       + rng.choice(stray) + percent_encoded(random_case(TOKEN, rng), rng, 0.2) + rng.choice(stray)
                       + rng.choice(["", "/", "//", "/x", f"?{POSTBACK}"]))
    sent = [b"GET " + target.encode() for target in targets]
    # Raw (unencoded) UTF-8: gunicorn refuses the request line itself.
    sent += [b"GET /webhook/" + token + b"?q=\xc3\xa9", b"GET /Webhook/" + token.upper() + b"?\xd0\xb6=1",
             b"GET /webhook/\xc3\xa9" + token, b"POST /webhook/" + token + b"/\xe2\x80\x8b"]
    return [line + b" HTTP/1.1" for line in sent]


def exchange(port: int, request_line: bytes, headers: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers + b"\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def no_token(text: str) -> bool:
    return TOKEN.lower() not in text.lower() and TOKEN.lower() not in unquote(text).lower()


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('live-logs') / 'db.sqlite3'}"
    migrate(production_env(url, tmp_path_factory.mktemp("migrate"), "consolemail://"))
    return url


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_output_holds_no_token_one_format_in_utc_and_no_forged_line(database_url, tmp_path, log_format):
    # Error emails go to the console too, so they are in the output checked. (The checkout has no collected
    # static files; the image has, and whitenoise would warn about it outside the log format.)
    env = production_env(database_url, tmp_path, "consolemail://", LOG_FORMAT=log_format,
                         PYTHONWARNINGS="ignore:No directory at")
    with Service(env, tmp_path, workers=1) as service:
        answers = [exchange(service.port, line) for line in requests()]
        answers.append(exchange(service.port, b"GET /health HTTP/1.1", f"Referer: /webhook/{TOKEN}\r\n".encode()))
        answers.append(exchange(service.port, b"GET /health HTTP/1.1", b"X-Token: " + TOKEN.encode() + b"\x01\r\n"))
    log = service.log()
    statuses = [answer.split(b" ", 2)[1] for answer in answers]

    assert no_token(log), "a token is in the output"
    # No error page echoes a token (gunicorn's 400 page quotes the request line it refuses).
    errors = [answer for status, answer in zip(statuses, answers, strict=True) if status >= b"400"]
    assert all(no_token(answer.decode("latin-1")) for answer in errors), "a token is in an error page"
    # The run reached what it claims: without these the absence of the token proves little.
    assert {b"200", b"400", b"404"} <= set(statuses), statuses
    assert "partner=epn_bz uniq_id=LIVE-LOG-1 status=waiting" in log  # created, then duplicates
    assert "Invalid HTTP request line" in log and "Not Found: /Webhook/<redacted>" in log

    lines = log.splitlines()
    # gunicorn's own lines are in the application's format: a line of each kind is checked below.
    if log_format == "text":
        assert [line for line in lines if not TEXT_LINE.fullmatch(line)] == []
        messages = lines
        assert any(" INFO gunicorn.error Booting worker" in line for line in lines)
    else:
        records = [json.loads(line) for line in lines]
        assert all(re.fullmatch(UTC_TIME, record["time"]) for record in records)
        messages = [record["message"] for record in records]
        assert any(record["logger"] == "gunicorn.error" and "Booting worker" in record["message"] for record in records)
    assert not any(line.startswith(FORGED_TIME) for line in lines), "a path forged a log line"
    assert any("gunicorn.access" in line and FORGED_TIME in line for line in lines), "the access line is missing"

    near_misses = [message for message in messages if "for the epn_bz webhook was answered 404: its URL has" in message]
    for mistake in MISTAKES:
        assert any(mistake in message for message in near_misses), mistake
