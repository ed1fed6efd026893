"""epnhook.middleware: the webhook and /health (@machine_endpoint) skip the browser-only middleware.

Through Django's test client and the real URLconf: a marked view answers without a trace of the
sessions, language, CSRF, auth, messages, axes or frame-options middleware, yet keeps what
SecurityMiddleware and the ALLOWED_HOSTS check give it; every other request still takes the whole
chain. "As before" is checked against a client whose chain lacks MachineEndpointMiddleware, which is
the chain a postback took before the middleware existed.
"""

import json
import logging

import pytest
from axes.middleware import AxesMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.locale import LocaleMiddleware
from django.middleware.security import SecurityMiddleware
from django.test import Client, override_settings
from whitenoise.middleware import WhiteNoiseMiddleware

from epnhook import errors
from orders import ingest as ingest_module
from orders import spool, views
from orders.models import Delivery, Order
from tests.factories import postback

pytestmark = pytest.mark.django_db

MACHINE = "epnhook.middleware.MachineEndpointMiddleware"
# What SecurityMiddleware adds to every answer (Strict-Transport-Security only to HTTPS ones).
SECURITY_HEADERS = ("X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy")
# Headers and cookies that only the browser-only middleware produce.
BROWSER_HEADERS = ("Vary", "Content-Language", "X-Frame-Options")
BROWSER_COOKIES = ("sessionid", "csrftoken", "messages")
# The hook of each middleware that runs on every request it sees.
BROWSER_MIDDLEWARE = {
    WhiteNoiseMiddleware: "__call__",
    SessionMiddleware: "process_request",
    LocaleMiddleware: "process_request",
    CommonMiddleware: "process_request",
    CsrfViewMiddleware: "process_request",
    AuthenticationMiddleware: "process_request",
    MessageMiddleware: "process_request",
    XFrameOptionsMiddleware: "process_response",
    AxesMiddleware: "__call__",
}


@pytest.fixture(autouse=True)
def own_dirs(settings, tmp_path):
    """A fresh alert throttle (the 500s mail the admins) and spool for each test."""
    settings.ALERT_STATE_DIR = tmp_path / "alerts"
    settings.SPOOL_DIR = tmp_path / "spool"


@pytest.fixture
def ran(monkeypatch):
    """Names of the middleware classes that ran, in order, for the requests made after it is set up."""
    calls = []

    def spy(cls, hook):
        real = getattr(cls, hook)

        def recording(self, *args, **kwargs):
            calls.append(cls.__name__)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(cls, hook, recording)

    for cls, hook in {**BROWSER_MIDDLEWARE, SecurityMiddleware: "process_request"}.items():
        spy(cls, hook)
    return calls


def loaded(client: Client, middleware: list[str] | None = None) -> Client:
    """`client` with its middleware chain built now, from `middleware` if given (else the settings)."""
    with override_settings(**({"MIDDLEWARE": middleware} if middleware is not None else {})):
        client.handler.load_middleware()
    return client


def before_the_change(settings, **kwargs) -> Client:
    """A client with the whole chain for every view: the settings' MIDDLEWARE without MACHINE."""
    return loaded(Client(**kwargs), [name for name in settings.MIDDLEWARE if name != MACHINE])


def assert_lean(response):
    for header in BROWSER_HEADERS:
        assert header not in response, f"{header}: {response.get(header)}"
    assert not any(name in response.cookies for name in BROWSER_COOKIES), response.cookies


def test_the_middleware_is_first_so_it_can_route_past_the_rest(settings):
    assert settings.MIDDLEWARE[0] == MACHINE
    assert "django.middleware.security.SecurityMiddleware" in settings.MIDDLEWARE[1:]


# --- Marked views: lean, but with SecurityMiddleware's headers ---------------------------------------

def test_webhook_postback_skips_the_browser_middleware_but_keeps_the_security_headers(client, webhook_url,
                                                                                      settings, ran):
    response = client.get(webhook_url, postback())
    assert response.status_code == 200 and response.json()["status"] == "created"
    assert_lean(response)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == settings.SECURE_REFERRER_POLICY
    assert response["Cross-Origin-Opener-Policy"] == settings.SECURE_CROSS_ORIGIN_OPENER_POLICY
    assert ran == ["SecurityMiddleware"]
    # The same client on an admin page: there the browser middleware did run.
    ran.clear()
    page = client.get(f"/{settings.ADMIN_URL}login/")
    assert page.status_code == 200
    assert page["Content-Language"] == "en" and page["X-Frame-Options"] == "DENY"
    assert "Accept-Language" in page["Vary"] and "Cookie" in page["Vary"]
    assert "csrftoken" in page.cookies
    assert page["X-Content-Type-Options"] == "nosniff"
    assert set(ran) == {"SecurityMiddleware", *(cls.__name__ for cls in BROWSER_MIDDLEWARE)}


def test_marked_views_answer_with_a_content_length(client, webhook_url):
    """CommonMiddleware used to add it; without it gunicorn answers chunked or closes the connection."""
    for response in (client.get(webhook_url, postback()), client.get("/health"), client.put(webhook_url)):
        assert response["Content-Length"] == str(len(response.content)), response.status_code


def test_post_postback_with_cookies_is_lean_too(client, webhook_url, ran):
    """A sender that replays cookies gets none back, and no CSRF check refuses its POST."""
    client.cookies["sessionid"] = "not-a-session"
    client.cookies["csrftoken"] = "x" * 32
    response = client.post(webhook_url, json.dumps(postback()), content_type="application/json",
                           HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 200 and response.json()["status"] == "created"
    assert_lean(response)
    assert ran == ["SecurityMiddleware"]
    assert Delivery.objects.get().headers["Content-Type"] == "application/json"


def test_health_is_lean(client, settings, ran):
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert_lean(response)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == settings.SECURE_REFERRER_POLICY
    assert ran == ["SecurityMiddleware"]


def test_security_headers_are_those_of_the_whole_chain(client, webhook_url, settings):
    """Over HTTPS (as Traefik says in X-Forwarded-Proto), HSTS included."""
    old = before_the_change(settings)
    https = {"HTTP_X_FORWARDED_PROTO": "https"}
    for path, params in ((webhook_url, postback(uniq_id="new")), ("/health", {})):
        lean = client.get(path, params, **https)
        full = old.get(path, {**params, "uniq_id": "old"} if params else {}, **https)
        assert lean.status_code == full.status_code == 200, path
        assert "Strict-Transport-Security" in lean, path
        for header in (*SECURITY_HEADERS, "Strict-Transport-Security", "Content-Type"):
            assert lean[header] == full[header], (path, header)
        assert "Content-Language" in full and "Content-Language" not in lean, path


# --- The HTTPS redirect and the Host check still apply ----------------------------------------------

def test_plain_http_webhook_is_redirected_as_before(client, webhook_url, settings):
    settings.SECURE_SSL_REDIRECT = True  # before either chain is built: SecurityMiddleware reads it then
    loaded(client)
    old = before_the_change(settings)
    lean = client.get(webhook_url, postback())
    full = old.get(webhook_url, postback())
    assert lean.status_code == full.status_code == 301
    assert lean["Location"] == f"https://testserver{webhook_url}?" + "&".join(f"{k}={v}" for k, v in postback().items())
    assert dict(lean.headers) == dict(full.headers)
    assert Delivery.objects.count() == 0
    # Behind the proxy, over HTTPS: stored, not redirected.
    response = client.get(webhook_url, postback(), HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200 and response.json()["status"] == "created"
    assert "Strict-Transport-Security" in response
    # /health is exempt (the container probe speaks plain HTTP), with or without this middleware.
    assert client.get("/health").status_code == old.get("/health").status_code == 200


@pytest.mark.parametrize("path", ["webhook", "health"])
def test_host_outside_allowed_hosts_is_400_and_the_view_does_not_run(client, webhook_url, monkeypatch, path):
    seen = []
    monkeypatch.setattr(views, "client_ip", lambda request: seen.append("webhook") or "192.0.2.1")
    monkeypatch.setattr(spool, "backlog", lambda: seen.append("health") or 0)
    url, params = (webhook_url, postback()) if path == "webhook" else ("/health", {})
    response = client.get(url, params, HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert seen == []
    assert Delivery.objects.count() == 0 and Order.objects.count() == 0
    # The same request with an allowed Host runs the view.
    assert client.get(url, params, HTTP_HOST="localhost").status_code == 200
    assert seen == [path]


def test_disallowed_host_is_refused_before_the_https_redirect(client, webhook_url, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get(webhook_url, postback(), HTTP_HOST="evil.example")
    assert response.status_code == 400 and "Location" not in response
    assert Delivery.objects.count() == 0


# --- Everything else takes the whole chain ------------------------------------------------------------

def test_unmarked_views_get_the_whole_chain(client, settings, ran):
    # CommonMiddleware's APPEND_SLASH redirect: it runs only in the whole chain.
    response = client.get(f"/{settings.ADMIN_URL.rstrip('/')}")
    assert response.status_code == 301 and response["Location"] == f"/{settings.ADMIN_URL}"
    assert response["Content-Language"] == "en"
    assert set(ran) == {"SecurityMiddleware", *(cls.__name__ for cls in BROWSER_MIDDLEWARE)}
    # Django's set_language (unmarked): LocaleMiddleware and the session do their work.
    response = client.post("/i18n/setlang/", {"language": "ru", "next": f"/{settings.ADMIN_URL}login/"})
    assert response.status_code == 302
    assert client.get(f"/{settings.ADMIN_URL}login/")["Content-Language"] == "ru"


@pytest.mark.parametrize("path", ["/no/such/page", "/webhook/", "/webhook/a/b", "/healthz", "/health/"])
def test_unresolvable_path_is_the_json_404_through_the_whole_chain(client, path, ran):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "not found"}
    assert response["Content-Language"] == "en" and response["X-Frame-Options"] == "DENY"
    assert "CommonMiddleware" in ran and "SessionMiddleware" in ran


def test_wrong_token_is_the_views_own_json_404_and_lean(client, ran):
    response = client.get("/webhook/not-a-token", postback())
    assert response.status_code == 404 and response.json() == {"error": "not found"}
    assert_lean(response)
    assert ran == ["SecurityMiddleware"]


# --- Errors in a marked view --------------------------------------------------------------------------

SERVER_ERROR = json.loads(errors.server_error(None).content)


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def request_log():
    """Records of the django.request logger, which does not propagate to caplog's root handler."""
    recorder, logger = Recorder(), logging.getLogger("django.request")
    logger.addHandler(recorder)
    yield recorder.records
    logger.removeHandler(recorder)


def test_error_in_the_webhook_is_the_json_500_logged_and_recorded(webhook_url, monkeypatch, request_log):
    client = Client(raise_request_exception=False)
    monkeypatch.setattr(ingest_module, "save_order", lambda *args: 1 / 0)
    response = client.get(webhook_url, postback(uniq_id="bug"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json" and response.json() == SERVER_ERROR
    (record,) = [r for r in request_log if r.name == "django.request" and r.levelno == logging.ERROR]
    assert record.getMessage().startswith("Internal Server Error: /webhook/")
    assert record.exc_info and record.exc_info[0] is ZeroDivisionError
    # ingest keeps the failed request as an error delivery before the exception reaches Django.
    assert Delivery.objects.get().outcome == "error"


def test_error_in_health_is_the_json_500(monkeypatch):
    client = Client(raise_request_exception=False)

    def broken():
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(spool, "backlog", broken)
    response = client.get("/health")
    assert response.status_code == 500 and response.json() == SERVER_ERROR


def test_error_in_a_marked_view_still_raises_in_tests(client, webhook_url, monkeypatch):
    """The default test client re-raises it: the exception went through Django's handler."""
    monkeypatch.setattr(ingest_module, "save_order", lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        client.get(webhook_url, postback())


@pytest.mark.parametrize("provoke", ["error in the view", "host outside ALLOWED_HOSTS"])
def test_error_answers_of_marked_views_keep_the_security_headers(webhook_url, settings, monkeypatch, provoke):
    """The module promises "the HTTPS redirect and the security headers still apply", and before it
    the 500 and the 400 of the webhook passed through SecurityMiddleware like any answer."""
    monkeypatch.setattr(ingest_module, "save_order", lambda *args: 1 / 0)
    lean = loaded(Client(raise_request_exception=False))
    full = before_the_change(settings, raise_request_exception=False)
    extra = {"HTTP_X_FORWARDED_PROTO": "https"}
    if provoke != "error in the view":
        extra["HTTP_HOST"] = "evil.example"
    answers = [client.get(webhook_url, postback(), **extra) for client in (lean, full)]
    assert answers[0].status_code == answers[1].status_code == (500 if provoke == "error in the view" else 400)
    assert answers[1]["X-Content-Type-Options"] == "nosniff"
    missing = [h for h in (*SECURITY_HEADERS, "Strict-Transport-Security") if answers[0].get(h) != answers[1][h]]
    assert missing == [], f"the {answers[0].status_code} of a marked view lacks {missing}"
