"""epnhook.logging's formatters: the text log keeps one line per record whatever a sender puts in it."""

import ast
import json
import logging
from pathlib import Path

import pytest
from django.conf import settings

import epnhook.logging as epnhook_logging
from epnhook.logging import JsonFormatter, OneLineFormatter
from tests.factories import postback

TEXT_FORMAT = settings.LOGGING["formatters"]["text"]["format"]


def record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("epnhook.webhook", logging.INFO, __file__, 1, message, args, exc_info)


def test_settings_use_the_one_line_formatter_for_text():
    assert settings.LOGGING["formatters"]["text"]["()"] == "epnhook.logging.OneLineFormatter"


def test_control_characters_in_a_message_are_escaped():
    line = OneLineFormatter(TEXT_FORMAT).format(
        record("postback created uniq_id=%s", "A-1\n2026-11-28 INFO epnhook.webhook postback created\r\t\x00\x7f")
    )
    assert "\n" not in line and "\r" not in line
    assert line.endswith(r"uniq_id=A-1\n2026-11-28 INFO epnhook.webhook postback created\r\t\x00\x7f")


def test_printable_text_is_left_alone():
    line = OneLineFormatter(TEXT_FORMAT).format(record("заказ %s 🎉 «ok»", "Ж-1"))
    assert line.endswith("заказ Ж-1 🎉 «ok»")


def test_a_traceback_still_follows_on_its_own_lines():
    try:
        raise ValueError("boom")
    except ValueError as error:
        exc_info = (type(error), error, error.__traceback__)
    first, *rest = OneLineFormatter(TEXT_FORMAT).format(record("failed", exc_info=exc_info)).splitlines()
    assert first.endswith("failed")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


def test_json_lines_were_already_one_line():
    line = JsonFormatter().format(record("uniq_id=%s", "A\nB"))
    assert "\n" not in line and json.loads(line)["message"] == "uniq_id=A\nB"


@pytest.mark.django_db
def test_a_postback_with_a_newline_in_its_uniq_id_logs_one_line(client, webhook_url, caplog):
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(TEXT_FORMAT))
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
