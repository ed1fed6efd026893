"""Security properties of the webhook and the admin: limits before any database work, wrong tokens,
token hygiene (checks, rotation, never in a log line, an email or an admin page), admin cookies."""

import hmac
import io
import json
import logging

import pytest
from django.core.checks import run_checks
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from epnhook.logging import JsonFormatter
from orders import alerts
from orders import ingest as ingest_module
from orders.checks import token_strength_bits
from orders.models import Delivery, Order
from partners import tokens
from partners.models import Network, NetworkToken
from tests.factories import load_settings, postback
from tests.settings import TEST_TOKEN, TEST_TOKEN_ROTATED

pytestmark = pytest.mark.django_db
TOKENS = (TEST_TOKEN, TEST_TOKEN_ROTATED)


# --- Limits: refused before any database query -----------------------------------------------------

@pytest.mark.parametrize("send", [
    pytest.param(lambda c, url: c.post(url, b"x=" + b"a" * (64 * 1024), content_type="text/plain"), id="body"),
    pytest.param(lambda c, url: c.post(url, b"x=1", content_type="text/plain", CONTENT_LENGTH=str(10**9)),
                 id="declared-length"),
    pytest.param(lambda c, url: c.get(url + "?pad=" + "a" * 8193), id="query"),
    pytest.param(lambda c, url: c.put(url, b"x=1"), id="method"),
    pytest.param(lambda c, url: c.get("/webhook/wrong" + "a" * 40, postback()), id="wrong-token"),
])
def test_refusals_make_no_database_query(client, webhook_url, send):
    with CaptureQueriesContext(connection) as queries:
        response = send(client, webhook_url)
    assert response.status_code in (404, 405, 413)
    assert "error" in response.json()
    assert queries.captured_queries == []
    assert Delivery.objects.count() == 0


def test_the_query_counter_sees_an_accepted_postback(client, webhook_url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(webhook_url, postback()).status_code == 200
    assert any("INSERT" in query["sql"].upper() for query in queries.captured_queries)


def test_query_string_at_the_limit_is_read(client, webhook_url):
    query = "&".join(f"{k}={v}" for k, v in postback().items())
    query += "&pad=" + "a" * (8192 - len(query) - 5)
    assert len(query) == 8192
    assert client.get(f"{webhook_url}?{query}").status_code == 200


# --- Wrong tokens ------------------------------------------------------------------------------------

def test_token_lookup_takes_the_same_steps_whatever_the_guess(monkeypatch, settings):
    """The timing argument, by construction: the candidate is hashed first, then compared with
    hmac.compare_digest against every token, the environment's and the admin's, always 32 bytes
    against 32 bytes and with no early exit; so neither a matching prefix, nor the length, nor which
    token matched (nor which kind of token it is) changes the work done."""
    settings.WEBHOOK_TOKENS = [("epn_bz", TEST_TOKEN), ("epn_bz", TEST_TOKEN_ROTATED), ("other", "o" * 43)]
    _row, admin_token = NetworkToken.issue(Network.objects.get(slug="admitad"))
    calls = []
    compare_digest = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return compare_digest(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    tokens.partner_for_token("warm-up")  # reads the snapshot, with the admin's token
    for guess in (TEST_TOKEN, TEST_TOKEN_ROTATED, admin_token, TEST_TOKEN[:-1] + "x", admin_token[:-1] + "x",
                  TEST_TOKEN[:5], "", "x" * 5000, "я" * 60):
        calls.clear()
        found = tokens.partner_for_token(guess)
        expected = "epn_bz" if guess in TOKENS else "admitad" if guess == admin_token else None
        assert (found and found.partner) == expected
        assert calls == [(32, 32)] * 4, guess


def test_near_miss_tokens_are_404_every_time(client):
    for guess in (TEST_TOKEN[:-1], TEST_TOKEN + "0", TEST_TOKEN.upper(), TEST_TOKEN[1:]) * 4:
        response = client.get(f"/webhook/{guess}", postback())
        assert (response.status_code, response.json()) == (404, {"error": "not found"})


def test_repeated_wrong_tokens_are_logged_then_limited_without_blocking_valid_ones(client, webhook_url, settings,
                                                                                   caplog):
    settings.WEBHOOK_BAD_TOKEN_LIMIT = 3
    scanner = {"REMOTE_ADDR": "198.51.100.66"}
    with caplog.at_level(logging.INFO, logger="epnhook.tokens"):
        answers = [client.get(f"/webhook/guess-{n}", **scanner).status_code for n in range(5)]
        limited = client.get("/webhook/guess-6", **scanner)
    assert answers == [404, 404, 404, 429, 429]
    assert limited.json()["error"].startswith("too many requests")
    assert 1 <= int(limited["Retry-After"]) <= 60
    # The scanner's address still gets through with a valid token, and other addresses are untouched.
    assert client.get(webhook_url, postback(), **scanner).status_code == 200
    assert client.get("/webhook/guess-7", REMOTE_ADDR="198.51.100.67").status_code == 404
    misses = [r for r in caplog.records if r.name == "epnhook.tokens" and r.levelno == logging.INFO]
    assert sum("198.51.100.66" in r.getMessage() for r in misses) == 6, "every miss is logged with its address"
    warnings = [r.getMessage() for r in caplog.records if r.name == "epnhook.tokens" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "198.51.100.66" in warnings[0], "one warning when the limit is crossed"
    assert not any("guess-" in r.getMessage() for r in caplog.records), "a wrong token is never logged"


@pytest.mark.parametrize("path,mistake", [
    (f"/Webhook/{TEST_TOKEN}", "'webhook' in the wrong case"),
    (f"/WEBHOOK/{TEST_TOKEN_ROTATED}/", "'webhook' in the wrong case"),
    (f"/webhook//{TEST_TOKEN}", "a doubled slash"),
    (f"/webhook/{TEST_TOKEN}//", "a doubled slash"),
    (f"/webhook/%20{TEST_TOKEN}", "stray characters around the token"),
    (f"/webhook/%22{TEST_TOKEN}%22", "stray characters around the token"),
    (f"/webhook/{TEST_TOKEN_ROTATED}%3E", "stray characters around the token"),
    (f"/webhook/{TEST_TOKEN}/postback", "more path after the token"),
    (f"/webhook/{TEST_TOKEN.upper()}", "the token in the wrong case"),
    (f"/Webhook//%22{TEST_TOKEN.swapcase()}", "the token in the wrong case, 'webhook' in the wrong case, a doubled "
                                              "slash, stray characters around the token"),
])
def test_a_near_miss_of_a_webhook_url_is_a_warning_naming_the_mistake(client, caplog, path, mistake):
    """A sender that calls such a URL loses every postback to a 404: the operator must hear of it."""
    with caplog.at_level(logging.WARNING, logger="epnhook.tokens"):
        response = client.get(path, postback())
    assert (response.status_code, response.json()) == (404, {"error": "not found"})
    warnings = [r for r in caplog.records if r.name == "epnhook.tokens" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].partner == "epn_bz"
    assert f"for the epn_bz webhook was answered 404: its URL has {mistake}." in warnings[0].getMessage()
    for token in TOKENS:
        assert token.lower() not in f"{warnings[0].getMessage()} {vars(warnings[0])}".lower()


@pytest.mark.parametrize("path", [
    f"/webhook/{TEST_TOKEN[:-1]}",  # a guess, however close
    f"/webhook/{TEST_TOKEN}x",
    f"/Webhook/guess-{TEST_TOKEN[:5]}",
    "/webhook/",
    f"/static/{TEST_TOKEN}",
])
def test_a_path_without_a_configured_token_is_no_near_miss(client, caplog, path):
    with caplog.at_level(logging.WARNING, logger="epnhook.tokens"):
        assert client.get(path).status_code == 404
    assert [r for r in caplog.records if r.name == "epnhook.tokens" and r.levelno == logging.WARNING] == []


def test_a_near_miss_is_told_apart_from_the_right_url():
    assert tokens.near_miss(f"/webhook/{TEST_TOKEN}") is None
    assert tokens.near_miss(f"/webhook/{TEST_TOKEN}/") is None
    assert tokens.near_miss(f"//webhook/{TEST_TOKEN}") == ("epn_bz", ["a doubled slash"])


def test_the_limit_is_per_minute(client, settings, monkeypatch):
    settings.WEBHOOK_BAD_TOKEN_LIMIT = 1
    now = 1_800_000_000.0
    monkeypatch.setattr(tokens.time, "time", lambda: now)
    assert [client.get("/webhook/guess").status_code for _ in range(2)] == [404, 429]
    now += 60
    assert client.get("/webhook/guess").status_code == 404


def test_limit_zero_turns_the_limiter_off(client, settings):
    settings.WEBHOOK_BAD_TOKEN_LIMIT = 0
    assert {client.get("/webhook/guess").status_code for _ in range(30)} == {404}


# --- Token hygiene -------------------------------------------------------------------------------------

def check_ids(settings, *token_list, partner="epn_bz"):
    settings.WEBHOOK_TOKENS = [(partner, token) for token in token_list]
    return [message.id for message in run_checks() if message.id.startswith("epnhook.")]


@pytest.mark.parametrize("token", [
    "short-token",
    "a" * 80,                                      # long, but not random
    "0123456789abcdef0123456789abcdef",            # 16 bytes in hex
    "0123456789abcdef" * 3 + "0123456789a",        # 59 hex characters: under 32 bytes
    "1234567890" * 7,                              # digits: 70 characters carry 232 bits
])
def test_weak_tokens_get_warning_w002(settings, token):
    assert check_ids(settings, token) == ["epnhook.W002"]


@pytest.mark.parametrize("token", [TEST_TOKEN, "Zx3_" + "q9F-tL0pWm7rYv2KcB8nHd5jGs1eUa4oXi6Rz-Nk_" + "Q"])
def test_random_looking_tokens_pass(settings, token):
    assert token_strength_bits(token) >= 256
    assert check_ids(settings, token) == []


def test_generated_tokens_pass_in_both_usual_encodings(settings):
    import secrets

    assert check_ids(settings, secrets.token_urlsafe(32), secrets.token_hex(32)) == []


@pytest.mark.parametrize("token", [TEST_TOKEN + "/x", TEST_TOKEN + "?", TEST_TOKEN + "%41", TEST_TOKEN + " x"])
def test_tokens_that_cannot_appear_in_a_url_path_are_errors(settings, token):
    assert "epnhook.E003" in check_ids(settings, token)


def test_several_tokens_live_at_once_and_a_removed_one_stops_working(client, settings):
    new_token = "rotated-in-" + "Kq7xP2mZ9vT4wL8nR3sY6bH1cJ5dF0gA" + "-eU"
    settings.WEBHOOK_TOKENS = [("epn_bz", TEST_TOKEN), ("epn_bz", new_token)]
    assert client.get(f"/webhook/{TEST_TOKEN}", postback(uniq_id="old")).status_code == 200
    assert client.get(f"/webhook/{new_token}", postback(uniq_id="new")).status_code == 200
    settings.WEBHOOK_TOKENS = [("epn_bz", new_token)]
    assert client.get(f"/webhook/{TEST_TOKEN}", postback(uniq_id="late")).status_code == 404
    assert client.get(f"/webhook/{new_token}", postback(uniq_id="newer")).status_code == 200
    assert sorted(Order.objects.values_list("uniq_id", flat=True)) == ["new", "newer", "old"]


# --- No token in a log line, an email or an admin page -------------------------------------------------

@pytest.fixture
def plain_static_files(settings):
    """Admin pages without a collectstatic run: the manifest storage of production needs one."""
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture
def emitted_logs():
    """Everything the configured log handlers write, in the text format and in the JSON format.

    The real "console" handler (with its redaction filter) gets a buffer instead of stderr; a twin
    with the JSON formatter and the same filters sits beside it on every logger that has it.
    """
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    loggers = [logger for logger in loggers if any(h.name == "console" for h in logger.handlers)]
    console = next(h for h in loggers[0].handlers if h.name == "console")
    text, as_json = io.StringIO(), io.StringIO()
    twin = logging.StreamHandler(as_json)
    twin.setFormatter(JsonFormatter())
    for log_filter in console.filters:
        twin.addFilter(log_filter)
    previous = console.setStream(text)
    for logger in loggers:
        logger.addHandler(twin)
    yield text, as_json
    console.setStream(previous)
    for logger in loggers:
        logger.removeHandler(twin)


@pytest.mark.usefixtures("plain_static_files")
def test_no_token_in_logs_emails_or_admin_pages(client, admin_client, settings, monkeypatch, mailoutbox, tmp_path,
                                                emitted_logs):
    settings.ALERT_STATE_DIR = tmp_path / "alerts"
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.INGEST_ATTEMPTS = 1
    settings.WEBHOOK_BAD_TOKEN_LIMIT = 2
    client.raise_request_exception = False
    url, rotated_url = f"/webhook/{TEST_TOKEN}", f"/webhook/{TEST_TOKEN_ROTATED}/"
    _row, admin_token = NetworkToken.issue(Network.objects.get(slug="epn_bz"), label="issued in the admin")

    # Successful postbacks (an admin token's too, and its near miss), an invalid one, refusals, near-miss
    # tokens up to the rate limit.
    assert client.get(f"/webhook/{admin_token}", postback(uniq_id="admin")).status_code == 200
    assert client.get(f"/Webhook/{admin_token}", postback(uniq_id="admin")).status_code == 404
    assert client.get(url, postback()).status_code == 200
    assert client.post(rotated_url, json.dumps(postback(order_status="completed")),
                       content_type="application/json").status_code == 200
    assert client.get(url, postback(revenue="NaN")).status_code == 400
    assert client.post(url, b"a" * 70_000, content_type="text/plain").status_code == 413
    assert client.get(url + "?" + "a" * 9000).status_code == 413
    assert client.delete(url).status_code == 405
    assert [client.get(f"/webhook/{TEST_TOKEN[:-1]}").status_code for _ in range(3)] == [404, 404, 429]
    # A bug of ours (500, with the error email), then a database outage (spooled, with the alert).
    with monkeypatch.context() as patch:
        patch.setattr(ingest_module, "save_order", lambda *args: 1 / 0)
        assert client.get(url, postback(uniq_id="bug")).status_code == 500
    with monkeypatch.context() as patch:
        def database_down(raw, **kwargs):
            raise OperationalError(2003, "Can't connect to server on '127.0.0.1'")

        patch.setattr(ingest_module, "store", database_down)
        assert client.get(rotated_url, postback(uniq_id="outage")).status_code == settings.SPOOL_ACK_STATUS
    alerts.wait_for_pending()

    # What staff see: every admin list and change page of the ledger's models and of the networks (the
    # page that issued the admin's token, the one place it is shown, aside).
    pages = [admin_client.get(f"/{settings.ADMIN_URL}")]
    for app, model, rows in (("orders", "order", Order), ("orders", "delivery", Delivery),
                             ("partners", "network", Network)):
        pages.append(admin_client.get(f"/{settings.ADMIN_URL}{app}/{model}/"))
        for pk in rows.objects.values_list("pk", flat=True):
            pages.append(admin_client.get(f"/{settings.ADMIN_URL}{app}/{model}/{pk}/change/"))
            if model == "network":
                pages.append(admin_client.get(f"/{settings.ADMIN_URL}{app}/{model}/{pk}/try/"))
                pages.append(admin_client.get(f"/{settings.ADMIN_URL}{app}/{model}/{pk}/history/"))
    assert len(pages) > 5 and all(page.status_code == 200 for page in pages)

    text_log, json_log = (buffer.getvalue() for buffer in emitted_logs)
    # The run produced what it claims to: without these the absence of the token proves nothing.
    for expected in ("Not Found: /webhook/<redacted>", "Internal Server Error: /webhook/<redacted>",
                     "Too Many Requests", "database unavailable", "postback created", "wrong webhook token",
                     "for the epn_bz webhook was answered 404: its URL has 'webhook' in the wrong case"):
        assert expected in text_log, expected
    assert "Not Found: /webhook/<redacted>" in json_log
    subjects = [message.subject for message in mailoutbox]
    assert any("ERROR" in subject for subject in subjects), subjects  # the 500
    assert any("database" in subject.lower() for subject in subjects), subjects  # the alert
    emails = [
        "\n".join([message.subject, message.body, *(content for content, _ in getattr(message, "alternatives", []))])
        for message in mailoutbox
    ]
    assert any("issued in the admin" in page.content.decode() for page in pages), "the admin token's row was shown"
    for token in (*TOKENS, admin_token):
        for name, content in [("text log", text_log), ("JSON log", json_log), *(("email", e) for e in emails),
                              *(("admin page", page.content.decode()) for page in pages)]:
            assert token not in content, f"a token appears in a {name}"
            assert token[:-1] not in content, f"most of a token appears in a {name}"


# --- Admin: CSRF and secure cookies ------------------------------------------------------------------

def test_production_defaults_secure_the_cookies():
    result = load_settings("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
                           DEBUG="False")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "31536000"]


@pytest.mark.usefixtures("plain_static_files")
def test_admin_login_needs_the_csrf_token(admin_user):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/admin/login/", {"username": "admin", "password": "password"}, secure=True)
    assert response.status_code == 403


@pytest.mark.usefixtures("plain_static_files")
def test_admin_session_and_csrf_cookies_are_secure_and_session_is_http_only(admin_user, settings):
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE  # the test settings are production's
    strict = Client(enforce_csrf_checks=True)
    login_page = strict.get(f"/{settings.ADMIN_URL}login/", secure=True)
    csrf_cookie = login_page.cookies["csrftoken"]
    assert csrf_cookie["secure"]
    response = strict.post(f"/{settings.ADMIN_URL}login/",
                           {"username": "admin", "password": "password", "csrfmiddlewaretoken": csrf_cookie.value,
                            "next": f"/{settings.ADMIN_URL}"},
                           secure=True, HTTP_REFERER=f"https://testserver/{settings.ADMIN_URL}login/")
    assert response.status_code == 302, response.content[:500]
    session_cookie = response.cookies["sessionid"]
    assert session_cookie["secure"] and session_cookie["httponly"]
    assert response.cookies["csrftoken"]["secure"]
