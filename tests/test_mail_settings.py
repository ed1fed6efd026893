"""EMAIL_URL: one setting switches the admins' mail between plain SMTP and a django-anymail provider.

Each case starts a fresh process with the production settings module and a given environment, so
what is tested is the switch itself, down to a message arriving: at a real SMTP server on loopback,
or at a loopback stand-in for the provider's HTTP API (the real one is on the internet).
"""

import base64
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

import pytest

from tests.factories import load_settings
from tests.live_service import BASE_DIR, SmtpSink, production_env

SEND_ONE_ALERT = (
    "import django; django.setup()\n"
    "from django.conf import settings\n"
    "from orders.alerts import alert, wait_for_pending\n"
    "print(settings.EMAIL_BACKEND, settings.EMAIL_TIMEOUT)\n"
    "alert('mail-settings-test', 'Mail switch test', 'body of the test alert')\n"
    "wait_for_pending()\n"
)


def run_django(tmp_path, email_url: str, code: str = SEND_ONE_ALERT, **extra: str) -> subprocess.CompletedProcess:
    env = production_env("sqlite:///" + str(tmp_path / "db.sqlite3"), tmp_path, email_url, **extra)
    return subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=60)


def test_smtp_url_sends_through_the_smtp_server(tmp_path):
    with SmtpSink() as smtp:
        result = run_django(tmp_path, smtp.url(), EMAIL_TIMEOUT="2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", "2"]
    assert smtp.subjects() == ["[epnhook] Mail switch test"]
    assert "body of the test alert" in smtp.texts()[0]


def test_an_smtp_url_sets_each_mail_setting_with_django_s_types():
    names = ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_HOST_PASSWORD", "EMAIL_USE_TLS",
             "EMAIL_USE_SSL")
    result = load_settings(*names, EMAIL_URL="smtp+tls://smtp.example.com")
    assert result.returncode == 0, result.stderr
    # Parts the URL leaves out get Django's own defaults, not None.
    assert result.stdout.splitlines() == ["django.core.mail.backends.smtp.EmailBackend", "smtp.example.com", "25", "",
                                          "", "True", "False"]


def test_an_option_in_the_smtp_url_that_nothing_reads_fails_at_start():
    result = load_settings("EMAIL_BACKEND", EMAIL_URL="smtp://smtp.example.com:25?timeout=5")
    assert result.returncode != 0
    assert "ImproperlyConfigured: EMAIL_URL: unknown option(s) TIMEOUT" in result.stderr


class _ProviderApi(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's hook name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers.get("Authorization", ""), parse_qs(body.decode())))
        answer = json.dumps({"id": "<test-message@mg.example.com>", "message": "Queued. Thank you."}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def test_anymail_url_sends_through_the_provider_api(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _ProviderApi)
    _ProviderApi.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = run_django(
            tmp_path, "anymail://mailgun", ANYMAIL_API_KEY="key-test",
            ANYMAIL_SETTINGS=f"MAILGUN_API_URL=http://127.0.0.1:{server.server_port}/v3,"
                             "MAILGUN_SENDER_DOMAIN=mg.example.com",
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "anymail.backends.mailgun.EmailBackend"
    assert len(_ProviderApi.received) == 1, result.stderr
    path, authorization, body = _ProviderApi.received[0]
    assert path == "/v3/mg.example.com/messages"
    assert authorization == "Basic " + base64.b64encode(b"api:key-test").decode()
    assert body["subject"] == ["[epnhook] Mail switch test"] and body["to"] == ["ops@example.com"]
    assert body["text"] == ["body of the test alert"]


@pytest.mark.parametrize("email_url", ["anymail://", "anymail://no-such-provider"])
def test_bad_anymail_url_fails_at_start(tmp_path, email_url):
    result = run_django(tmp_path, email_url, code="import django; django.setup()")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "EMAIL_URL" in result.stderr


START_BACKEND = (
    "import django; django.setup()\n"
    "from django.core.mail import get_connection\n"
    "get_connection()\n"
)


# Providers whose credential has another name than <PROVIDER>_API_KEY, and one that has that name; with
# what else each one needs to start.
@pytest.mark.parametrize(("provider", "anymail_settings"), [
    ("mailgun", ""), ("postmark", ""), ("mailersend", ""), ("mailtrap", ""), ("scaleway", "SCALEWAY_PROJECT_ID=p1"),
])
def test_anymail_api_key_reaches_the_setting_the_provider_reads(tmp_path, provider, anymail_settings):
    """The backend reads its credential when it is created: it starts with ANYMAIL_API_KEY, and without
    it fails naming the setting it looked for, so the key went where the provider looks."""
    extra = {"ANYMAIL_SETTINGS": anymail_settings}
    started = run_django(tmp_path, f"anymail://{provider}", START_BACKEND, ANYMAIL_API_KEY="key-test", **extra)
    assert started.returncode == 0, started.stderr
    missing = run_django(tmp_path, f"anymail://{provider}", START_BACKEND, **extra)
    assert "AnymailConfigurationError" in missing.stderr and f"{provider.upper()}_" in missing.stderr
