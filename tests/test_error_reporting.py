"""What reaches the admins' mailbox and the logs when a request goes wrong: throttled, never a token."""

import logging

import pytest

from epnhook.logging import REDACTED, RedactTokensFilter
from orders import alerts
from orders import ingest as ingest_module
from orders.alerts import ThrottledAdminEmailHandler
from tests.factories import postback
from tests.settings import TEST_TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_throttle(settings, tmp_path):
    settings.ALERT_STATE_DIR = tmp_path / "alerts"


def test_unhandled_errors_send_one_email_without_the_token(client, webhook_url, monkeypatch, mailoutbox):
    monkeypatch.setattr(ingest_module, "save_order", lambda *args: 1 / 0)
    client.raise_request_exception = False
    statuses = [client.get(webhook_url, postback(uniq_id=f"E{n}")).status_code for n in range(3)]
    alerts.wait_for_pending()
    assert statuses == [500, 500, 500]
    assert len(mailoutbox) == 1, "later errors within ALERT_THROTTLE_SECONDS are suppressed"
    message = mailoutbox[0].message().as_string()
    assert "ZeroDivisionError" in mailoutbox[0].body
    assert TEST_TOKEN not in message and f"/webhook/{REDACTED}" in mailoutbox[0].subject


def test_error_email_hides_the_mail_password(client, webhook_url, monkeypatch, mailoutbox, settings):
    settings.EMAIL_URL = "smtp://alerts:s3cret-mail-pass@smtp.example.com:587"
    monkeypatch.setattr(ingest_module, "save_order", lambda *args: 1 / 0)
    client.raise_request_exception = False
    client.get(webhook_url, postback())
    alerts.wait_for_pending()
    body = mailoutbox[0].body
    assert "EMAIL_URL" in body and "s3cret-mail-pass" not in body
    assert settings.SECRET_KEY not in body


def test_suppressed_count_is_reported_by_the_next_email(client, webhook_url, monkeypatch, mailoutbox, settings):
    monkeypatch.setattr(ingest_module, "save_order", lambda *args: 1 / 0)
    client.raise_request_exception = False
    settings.ALERT_THROTTLE_SECONDS = 3600
    for n in range(3):
        client.get(webhook_url, postback(uniq_id=f"E{n}"))
    settings.ALERT_THROTTLE_SECONDS = 0
    client.get(webhook_url, postback(uniq_id="E3"))
    alerts.wait_for_pending()
    assert len(mailoutbox) == 2
    assert "2 more error email(s) were suppressed" in mailoutbox[1].body


def test_wrong_host_on_a_webhook_url_is_400_and_mails_nobody(client, webhook_url, mailoutbox):
    response = client.get(webhook_url, postback(), HTTP_HOST="evil.example")
    alerts.wait_for_pending()
    assert response.status_code == 400
    assert mailoutbox == []


def test_every_django_logger_that_can_mail_uses_the_throttled_redacting_handler():
    for name in ("django", "django.request", "django.security", "django.template"):
        logger = logging.getLogger(name)
        while logger.handlers == [] and logger.propagate and logger.parent:
            logger = logger.parent
        mailers = [h for h in logger.handlers if "Email" in type(h).__name__]
        assert all(isinstance(h, ThrottledAdminEmailHandler) for h in mailers), (name, mailers)
        assert all(any(isinstance(f, RedactTokensFilter) for f in h.filters) for h in mailers), name


def test_not_found_log_line_is_redacted():
    record = logging.makeLogRecord({"name": "django.request", "msg": "Not Found: %s",
                                    "args": (f"/webhook/{TEST_TOKEN}/extra",), "levelno": logging.WARNING})
    RedactTokensFilter().filter(record)
    assert record.getMessage() == f"Not Found: /webhook/{REDACTED}/extra"
