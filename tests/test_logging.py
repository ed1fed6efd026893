"""epnhook.logging: one line per record whatever a sender puts in it, in UTC, and no webhook token in it."""

import ast
import json
import logging
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from django.conf import settings

import epnhook.logging as epnhook_logging
from epnhook.logging import REDACTED, JsonFormatter, OneLineFormatter, redact
from tests.factories import postback
from tests.settings import TEST_TOKEN, TEST_TOKEN_ROTATED


def record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("epnhook.webhook", logging.INFO, __file__, 1, message, args, exc_info)


def test_settings_use_the_one_line_formatter_for_text():
    assert settings.LOGGING["formatters"]["text"]["()"] == "epnhook.logging.OneLineFormatter"


def test_control_characters_in_a_message_are_escaped():
    line = OneLineFormatter().format(
        record("postback created uniq_id=%s", "A-1\n2026-11-28 INFO epnhook.webhook postback created\r\t\x00\x7f")
    )
    assert "\n" not in line and "\r" not in line
    assert line.endswith(r"uniq_id=A-1\n2026-11-28 INFO epnhook.webhook postback created\r\t\x00\x7f")


def test_printable_text_is_left_alone():
    line = OneLineFormatter().format(record("заказ %s 🎉 «ok»", "Ж-1"))
    assert line.endswith("заказ Ж-1 🎉 «ok»")


def test_a_traceback_still_follows_on_its_own_lines():
    try:
        raise ValueError("boom")
    except ValueError as error:
        exc_info = (type(error), error, error.__traceback__)
    first, *rest = OneLineFormatter().format(record("failed", exc_info=exc_info)).splitlines()
    assert first.endswith("failed")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


def test_json_lines_were_already_one_line():
    line = JsonFormatter().format(record("uniq_id=%s", "A\nB"))
    assert "\n" not in line and json.loads(line)["message"] == "uniq_id=A\nB"


@pytest.mark.django_db
def test_a_postback_with_a_newline_in_its_uniq_id_logs_one_line(client, webhook_url, caplog):
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter())
    with caplog.at_level(logging.INFO, logger="epnhook.webhook"):
        response = client.get(webhook_url, postback(uniq_id="EPN-1\nforged line"))
    assert response.status_code == 200
    lines = [handler.format(r) for r in caplog.records if r.name == "epnhook.webhook"]
    assert len(lines) == 1 and "\n" not in lines[0] and r"uniq_id=EPN-1\nforged line" in lines[0]


def test_logging_imports_nothing_from_the_apps():
    """epnhook.logging is loaded by the settings, before any app; the apps import from it (orders.alerts
    redacts its emails with it), so an import the other way would be a cycle, even one hidden in a function."""
    tree = ast.parse(Path(epnhook_logging.__file__).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "." for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] in ("orders", "partners") or name.startswith(".")]


# --- One time zone: UTC, with its offset ------------------------------------------------------------

@pytest.fixture
def local_time_in_tokyo(monkeypatch):
    """The process's local zone far from UTC, as Django sets it to TIME_ZONE in gunicorn's workers."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_in_tokyo")
def test_every_line_is_in_utc_with_its_offset_whatever_the_process_zone():
    assert time.strftime("%z") == "+0900"
    moment = record("postback created")
    moment.created, moment.msecs = 1_800_000_000.25, 250.0
    assert OneLineFormatter().format(moment).startswith("2027-01-15T08:00:00.250+00:00 INFO epnhook.webhook ")
    assert json.loads(JsonFormatter().format(moment))["time"] == "2027-01-15T08:00:00.250+00:00"


# --- No token in a line ---------------------------------------------------------------------------------

UNKNOWN = "not-a-configured-token-0123456789abcdef"  # a guess, or a token rotated out


@pytest.mark.parametrize("text", [
    f"Not Found: /webhook/{TEST_TOKEN}",
    f"Not Found: /webhook/{TEST_TOKEN}/extra",
    f"Not Found: /Webhook/{TEST_TOKEN}",
    f"Not Found: /WEBHOOK/{TEST_TOKEN.upper()}",
    f"Not Found: /webhook//{TEST_TOKEN}",
    f"Not Found: //webhook/{TEST_TOKEN}",
    f"Not Found: /webhook/ {TEST_TOKEN}",
    f'Not Found: /webhook/"{TEST_TOKEN}',
    f'127.0.0.1 "GET /webhook/\\"{TEST_TOKEN}" 404 22 1ms',  # gunicorn escapes the quote in its access line
    f"Invalid HTTP request line: 'GET /webhook/%22{TEST_TOKEN}?q=Ã© HTTP/1.1'",
    f"Invalid HTTP request line: 'GET /webhook/%20{TEST_TOKEN.swapcase()} HTTP/1.1'",
    f"Not Found: /static/{TEST_TOKEN}",
    f"Referer: https://example.com/?next={TEST_TOKEN_ROTATED}&x=1",
    f"uniq_id={TEST_TOKEN.upper()}",
    f"GET /webhook/{TEST_TOKEN[:10]}%{ord(TEST_TOKEN[10]):02X}{TEST_TOKEN[11:]}",  # one character percent-encoded
    f"GET /other/{''.join(f'%{ord(c):02x}' for c in TEST_TOKEN)}",  # every character percent-encoded
])
def test_configured_tokens_are_redacted_in_any_case_and_spelling(text):
    cleaned = redact(text)
    assert REDACTED in cleaned
    assert TEST_TOKEN.lower() not in unquote(cleaned).lower()
    assert TEST_TOKEN_ROTATED.lower() not in unquote(cleaned).lower()


@pytest.mark.parametrize("text", [
    f"Not Found: /webhook/{UNKNOWN}",
    f"Not Found: /Webhook//{UNKNOWN}/",
    f"Not Found: /webhook/ {UNKNOWN}",
    f'Not Found: /webhook/"{UNKNOWN}',
    f"Not Found: /webhook/'{UNKNOWN}",
    f'127.0.0.1 "GET /webhook/\\"{UNKNOWN}" 404 22 1ms',
    f"Invalid HTTP request line: 'GET /webhook/%22%20{UNKNOWN}?q=Ã© HTTP/1.1'",
])
def test_whatever_follows_a_webhook_path_is_redacted(text):
    assert UNKNOWN not in redact(text) and REDACTED in redact(text)


@pytest.mark.parametrize("text", [
    '127.0.0.1 "GET /webhook/" 404 22 1ms',
    "Not Found: /webhook/ ok",
    'postback created partner=epn_bz uniq_id=EPN-1 status=waiting ms=1.5 delivery_id=7',
])
def test_lines_without_a_token_are_left_alone(text):
    assert redact(text) == text


def test_a_token_source_can_be_added(monkeypatch):
    """Tokens from another place (say, made by staff in the admin) are redacted like configured ones."""
    made_in_the_admin = "made-in-the-admin-0123456789abcdefghij"
    assert redact(f"?t={made_in_the_admin}") == f"?t={made_in_the_admin}"
    monkeypatch.setattr(epnhook_logging, "TOKEN_SOURCES", [*epnhook_logging.TOKEN_SOURCES, lambda: [made_in_the_admin]])
    assert redact(f"?t={made_in_the_admin.upper()}") == f"?t={REDACTED}"


def test_a_json_line_is_redacted_whole_and_stays_json():
    line = JsonFormatter().format(logging.makeLogRecord({
        "name": "epnhook.webhook", "levelname": "INFO", "msg": 'GET /webhook/"%s\n', "args": (TEST_TOKEN,),
        "uniq_id": TEST_TOKEN.upper(), "referer": f'https://x.example/webhook/\\"{UNKNOWN}',
    }))
    data = json.loads(line)
    assert TEST_TOKEN.lower() not in line.lower() and UNKNOWN not in line
    assert data["uniq_id"] == REDACTED and data["message"].startswith("GET /webhook/")


def test_the_text_format_redacts_the_traceback_too():
    try:
        raise ValueError(f"no route for /webhook/{TEST_TOKEN}")
    except ValueError as error:
        exc_info = (type(error), error, error.__traceback__)
    line = OneLineFormatter().format(record("failed", exc_info=exc_info))
    assert TEST_TOKEN not in line and f"ValueError: no route for /webhook/{REDACTED}" in line
