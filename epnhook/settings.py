"""Django settings for epnhook.

This is the only module that reads the environment. Every variable is listed, with its default, in
`.env.example` and in the README. Values come from the process environment first, then from the
file named by ENV_FILE (default: `.env` beside manage.py). Bad values fail at start-up, loudly.
"""

import base64
import importlib.util
import ipaddress
import secrets
import urllib.parse
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
ENV_FILE = env.str("ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    # read_env never overrides a variable that is already set in the process environment.
    environ.Env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)

# `manage.py setup` writes the first .env, so it alone must start before any SECRET_KEY exists: manage.py
# sets SETUP_WIZARD=1 for it. It gets a random key that lives as long as the process (and becomes the
# new .env's key); every other process without a key still fails loudly.
SETUP_WIZARD = env.bool("SETUP_WIZARD", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG and not SETUP_WIZARD:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (see .env.example).")
    SECRET_KEY = secrets.token_urlsafe(50) if SETUP_WIZARD else "insecure-development-only-key"

# The public host name (written by manage.py setup; docker compose routes it through Traefik). It is
# the default for ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS, so one line configures all three.
DOMAIN = env.str("DOMAIN", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[DOMAIN] if DOMAIN else ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[f"https://{DOMAIN}"] if DOMAIN else [])
ADMIN_URL = env.str("ADMIN_URL", default="admin/")
if not ADMIN_URL.endswith("/") or ADMIN_URL.startswith("/"):
    raise ImproperlyConfigured("ADMIN_URL must look like 'admin/': no leading slash, one trailing slash.")

INSTALLED_APPS = [
    # django.contrib.admin with the project's site (epnhook/admin.py: the sidebar's order, Axes for superusers).
    "epnhook.apps.EpnhookAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "anymail",
    "partners",
    "orders",
]

MIDDLEWARE = [
    # First: sends the webhook and the health probe past the browser-only middleware below.
    "epnhook.middleware.MachineEndpointMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "epnhook.urls"
WSGI_APPLICATION = "epnhook.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# SQLite is the embedded default so a fresh checkout runs with no setup; production is MariaDB.
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
# Timeouts are short on purpose: a postback request must answer (or spool) within INGEST_DEADLINE
# seconds, so no single database wait may approach it. 0 means "no limit" for read/write, which an
# operator sets for a long migration on a big table.
# One attempt can take a connect plus one read the server never answers (measured with a frozen
# mariadbd: the handshake is bounded by the connect timeout, a ping or query by the read timeout),
# so 1 + 3 s leaves the 5 s bound room to spool and answer.
DATABASE_CONNECT_TIMEOUT = env.int("DATABASE_CONNECT_TIMEOUT", default=1)
DATABASE_READ_TIMEOUT = env.int("DATABASE_READ_TIMEOUT", default=3)
DATABASE_LOCK_WAIT_TIMEOUT = env.int("DATABASE_LOCK_WAIT_TIMEOUT", default=2)
# Seconds one query of an admin list (its page, count, totals or a CSV chunk) may run on MariaDB before the
# server stops it and the page says to narrow the filter (orders.listquery); below DATABASE_READ_TIMEOUT,
# which would end the connection with a 500 instead. 0: no limit. SQLite has none.
ADMIN_QUERY_TIMEOUT = env.float("ADMIN_QUERY_TIMEOUT", default=2)
if ADMIN_QUERY_TIMEOUT < 0:
    raise ImproperlyConfigured("ADMIN_QUERY_TIMEOUT must be 0 (no limit) or a number of seconds.")
if _db["ENGINE"] == "django.db.backends.mysql":
    _options = {
        "charset": "utf8mb4",
        "connect_timeout": DATABASE_CONNECT_TIMEOUT,
        # Strict mode turns bad values into errors instead of silently truncated data; the session
        # lock wait replaces InnoDB's 50 s default, far longer than any sender waits.
        "init_command": (
            "SET sql_mode='STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO',"
            f" innodb_lock_wait_timeout={DATABASE_LOCK_WAIT_TIMEOUT}"
        ),
        "isolation_level": "read committed",
    }
    if DATABASE_READ_TIMEOUT:
        _options["read_timeout"] = DATABASE_READ_TIMEOUT
        _options["write_timeout"] = DATABASE_READ_TIMEOUT
    _db["OPTIONS"] = {**_options, **_db.get("OPTIONS", {})}
    # Identifiers are compared exactly (see orders.fields); the test database matches production.
    _db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # A writer waits for SQLite's lock instead of failing at once under concurrent postbacks.
    _db.setdefault("OPTIONS", {}).setdefault("timeout", DATABASE_LOCK_WAIT_TIMEOUT + 3)
    _db["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
else:
    raise ImproperlyConfigured("DATABASE_URL must be a mysql:// (MariaDB) or sqlite:// URL.")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Webhook ingest ------------------------------------------------------------------------------
# Tokens: WEBHOOK_TOKENS "partner:token,..." any partner's; WEBHOOK_SECRET_TOKEN holds EPN.bz's, the same as
# WEBHOOK_TOKENS=epn_bz:<token> (make run and manage.py setup write it). Several tokens per partner may be
# live at once, which is how a token is rotated without a gap.
def _partner_item(item: str, variable: str, form: str, *, secret: bool = False) -> tuple[str, str]:
    """Split one 'partner:value' item of a list variable; a malformed one stops the start-up.
    A secret value (a token) is not repeated in the message."""
    partner, separator, value = (part.strip() for part in item.partition(":"))
    if not separator or not partner or not value:
        shown = f"{partner!r}:..." if secret else repr(item)
        raise ImproperlyConfigured(f"{variable} items must be '{form}', got {shown}")
    return partner, value


# The partner WEBHOOK_SECRET_TOKEN is for: the one place outside partners/ that names a network.
WEBHOOK_SECRET_TOKEN_PARTNER = "epn_bz"
WEBHOOK_TOKENS = [(WEBHOOK_SECRET_TOKEN_PARTNER, token) for token in env.list("WEBHOOK_SECRET_TOKEN", default=[])]
WEBHOOK_TOKENS += [_partner_item(item, "WEBHOOK_TOKENS", "partner:token", secret=True)
                   for item in env.list("WEBHOOK_TOKENS", default=[])]

WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=64 * 1024)
WEBHOOK_MAX_QUERY_BYTES = env.int("WEBHOOK_MAX_QUERY_BYTES", default=8 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES

# A postback request answers within this many seconds whatever the database does.
INGEST_DEADLINE = env.float("INGEST_DEADLINE", default=5.0)
INGEST_ATTEMPTS = env.int("INGEST_ATTEMPTS", default=5)
SPOOL_DIR = Path(env.str("SPOOL_DIR", default=str(BASE_DIR / "var" / "spool")))
SPOOL_ACK_STATUS = env.int("SPOOL_ACK_STATUS", default=503)
if SPOOL_ACK_STATUS not in (202, 503):
    raise ImproperlyConfigured("SPOOL_ACK_STATUS must be 503 (sender retries) or 202 (spool is the ack).")
ALERT_THROTTLE_SECONDS = env.int("ALERT_THROTTLE_SECONDS", default=15 * 60)
ALERT_STATE_DIR = Path(env.str("ALERT_STATE_DIR", default=str(BASE_DIR / "var" / "alerts")))

# --- Read-only API (orders.readapi) ---------------------------------------------------------------
# The API lists a row only once it is this many seconds old, so that a write whose transaction commits
# after its updated_at stamp is not skipped by a consumer's cursor (the contract in orders.readapi).
# Writes commit within INGEST_DEADLINE; the margin covers clocks of several app hosts drifting apart.
API_SETTLE_SECONDS = env.float("API_SETTLE_SECONDS", default=10.0)
if API_SETTLE_SECONDS < INGEST_DEADLINE:
    raise ImproperlyConfigured("API_SETTLE_SECONDS must be at least INGEST_DEADLINE (see orders.readapi).")

# --- Mail ----------------------------------------------------------------------------------------
ADMINS = []
for _admin in env.list("ADMINS", default=[]):
    _name, _sep, _addr = _admin.rpartition("<")
    ADMINS.append((_name.strip(), _addr.rstrip(">").strip()) if _sep else ("", _admin.strip()))
MANAGERS = ADMINS

# EMAIL_URL picks the transport: smtp://, smtp+tls://, smtp+ssl://, consolemail://, or
# anymail://<esp> for any provider django-anymail supports (its key in ANYMAIL_API_KEY).
EMAIL_URL = env.str("EMAIL_URL", default="consolemail://")
# django-anymail reads a provider's credential from ANYMAIL["<PROVIDER>_<NAME>"]; NAME is API_KEY except
# for these. ANYMAIL_CREDENTIAL is that key for the configured provider ("" without anymail://): the
# health check and the setup wizard look the credential up under it.
_ANYMAIL_CREDENTIAL_NAMES = {"postmark": "SERVER_TOKEN", "mailersend": "API_TOKEN", "mailtrap": "API_TOKEN",
                             "scaleway": "SECRET_KEY"}
ANYMAIL = {}
ANYMAIL_CREDENTIAL = ""
if EMAIL_URL.startswith("anymail://"):
    _esp = EMAIL_URL.removeprefix("anymail://").strip("/")
    if not _esp:
        raise ImproperlyConfigured("EMAIL_URL anymail:// needs a provider, e.g. anymail://mailgun")
    EMAIL_BACKEND = f"anymail.backends.{_esp}.EmailBackend"
    # A misspelt provider would otherwise surface only when the first alert fails to send.
    if importlib.util.find_spec(f"anymail.backends.{_esp}") is None:
        raise ImproperlyConfigured(f"EMAIL_URL names {_esp!r}, which is not a django-anymail provider.")
    ANYMAIL_CREDENTIAL = f"{_esp.upper()}_{_ANYMAIL_CREDENTIAL_NAMES.get(_esp, 'API_KEY')}"
    if env.str("ANYMAIL_API_KEY", default=""):
        ANYMAIL[ANYMAIL_CREDENTIAL] = env.str("ANYMAIL_API_KEY")
    for _extra in env.list("ANYMAIL_SETTINGS", default=[]):
        _key, _sep, _value = _extra.partition("=")
        ANYMAIL[_key.strip().upper()] = _value.strip()
else:
    _mail = env.email_url_config(EMAIL_URL)
    if _mail.get("OPTIONS"):
        # django-environ would collect them into a setting nothing reads.
        raise ImproperlyConfigured(f"EMAIL_URL: unknown option(s) {', '.join(_mail['OPTIONS'])}.")
    EMAIL_BACKEND = _mail["EMAIL_BACKEND"]
    EMAIL_HOST = _mail["EMAIL_HOST"] or ""
    EMAIL_PORT = _mail["EMAIL_PORT"] or 25
    EMAIL_HOST_USER = _mail["EMAIL_HOST_USER"] or ""
    EMAIL_HOST_PASSWORD = _mail["EMAIL_HOST_PASSWORD"] or ""
    EMAIL_USE_TLS = bool(_mail.get("EMAIL_USE_TLS"))
    EMAIL_USE_SSL = bool(_mail.get("EMAIL_USE_SSL"))
    EMAIL_FILE_PATH = _mail["EMAIL_FILE_PATH"]
# A hung mail server must never hold a request beyond the ingest bound.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=3)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="epnhook@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_SUBJECT_PREFIX = env.str("EMAIL_SUBJECT_PREFIX", default="[epnhook] ")
# The settings dump in 500 emails hides EMAIL_URL too (it carries the SMTP password).
DEFAULT_EXCEPTION_REPORTER_FILTER = "epnhook.logging.SafeReporterFilter"

# --- Internationalisation ------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="ru")
LANGUAGES = [("ru", "Русский"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Moscow")
USE_I18N = True
USE_TZ = True

# --- Static files --------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- HTTPS hardening (production) -----------------------------------------------------------------
# Traefik terminates TLS and says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
# /health is probed over plain HTTP inside the container network.
SECURE_REDIRECT_EXEMPT = [r"^health$"]

# --- Logging -------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'text' or 'json'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Webhook URLs carry the secret token. The formatters redact each whole line they write; the
        # record itself is scrubbed too, for the handlers after the console and for error emails, which
        # are built from the record (its subject, the request attached).
        "redact_tokens": {"()": "epnhook.logging.RedactTokensFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "only_exceptions": {"()": "epnhook.logging.OnlyExceptions"},
    },
    # The same formatters write gunicorn's own lines (gunicorn.conf.py): one format, in UTC, in one stream.
    "formatters": {
        "text": {"()": "epnhook.logging.OneLineFormatter"},
        "json": {"()": "epnhook.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",  # one stream for the request lines, with gunicorn's access log
            "formatter": LOG_FORMAT,
            "filters": ["redact_tokens"],
        },
        "mail_admins": {
            "class": "orders.alerts.ThrottledAdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", "only_exceptions", "redact_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"handlers": ["console", "mail_admins"], "level": "WARNING", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Replaces Django's default "django" logger, whose stock AdminEmailHandler would email
        # security errors unthrottled and with the request (and so the webhook token) attached.
        "django": {"handlers": ["console", "mail_admins"], "level": "INFO", "propagate": False},
        # A request with a wrong Host header is a scanner's noise, not something to wake anyone for.
        "django.security.DisallowedHost": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

# --- Operations (manage.py check_health, prune_deliveries) -------------------------------------------
# STALE_AFTER_HOURS: a bare number is the default for every partner; "partner:hours" items override it
# for one partner, e.g. "24,epn_bz:6". 0 turns the check off (for a network that is quiet for days).
# Partner names are checked against the registry by a system check (orders.checks).
STALE_AFTER_HOURS = 24.0
STALE_AFTER_HOURS_BY_PARTNER = {}
for _item in env.list("STALE_AFTER_HOURS", default=["24"]):
    _form = "hours' or 'partner:hours"
    _partner, _hours = _partner_item(_item, "STALE_AFTER_HOURS", _form) if ":" in _item else ("", _item)
    try:
        _value = float(_hours)
    except ValueError:
        _value = -1.0
    if not 0 <= _value < float("inf"):
        raise ImproperlyConfigured(f"STALE_AFTER_HOURS items must be '{_form}', got {_item!r}")
    if _partner:
        STALE_AFTER_HOURS_BY_PARTNER[_partner] = _value
    else:
        STALE_AFTER_HOURS = _value
# Free space under SPOOL_DIR below which check_health warns / reports critical (MiB).
SPOOL_FREE_WARNING_MB = env.int("SPOOL_FREE_WARNING_MB", default=1024)
SPOOL_FREE_CRITICAL_MB = env.int("SPOOL_FREE_CRITICAL_MB", default=100)
# A database answer taking this many milliseconds or more is a warning.
HEALTH_DATABASE_SLOW_MS = env.int("HEALTH_DATABASE_SLOW_MS", default=500)
# check_health (and the overview page, in red) warns at this many invalid deliveries in the last 24 h,
# and at this many money conflicts that nobody has marked as looked at; 0 turns either check off.
HEALTH_INVALID_DELIVERIES = env.int("HEALTH_INVALID_DELIVERIES", default=10)
HEALTH_CONFLICTS = env.int("HEALTH_CONFLICTS", default=1)
if HEALTH_INVALID_DELIVERIES < 0 or HEALTH_CONFLICTS < 0:
    raise ImproperlyConfigured("HEALTH_INVALID_DELIVERIES and HEALTH_CONFLICTS must be 0 or more.")
# prune_deliveries removes raw deliveries older than this many days (orders are never pruned).
DELIVERY_RETENTION_DAYS = env.int("DELIVERY_RETENTION_DAYS", default=180)
if DELIVERY_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("DELIVERY_RETENTION_DAYS must be at least 1.")

# --- Outbound events for the site (orders.outbox, manage.py deliver_events) -------------------------
# The site's endpoint; empty: no event is written at all. https, or http to this host only (a receiver on
# the same machine): anything else would send the ledger and its signatures over the open network.
OUTBOUND_URL = env.str("OUTBOUND_URL", default="")
# The signing secret, as Standard Webhooks has it: "whsec_" + base64 of 24 to 64 random bytes.
OUTBOUND_SECRET = env.str("OUTBOUND_SECRET", default="")
# Seconds the sender waits for the site's answer before counting the attempt as failed.
OUTBOUND_TIMEOUT = env.float("OUTBOUND_TIMEOUT", default=5.0)
# Seconds before each attempt at an event: the first, then each retry; after the last the event is failed.
OUTBOUND_RETRY_SCHEDULE = env.list("OUTBOUND_RETRY_SCHEDULE",
                                   default=["0", "5", "300", "1800", "7200", "18000", "36000", "36000"])


def _outbound_secret_bytes(secret: str) -> bytes:
    prefix = "whsec_"
    if not secret.startswith(prefix):
        raise ImproperlyConfigured("OUTBOUND_SECRET must be 'whsec_' + base64 (manage.py setup can make one).")
    try:
        key = base64.b64decode(secret[len(prefix):], validate=True)
    except ValueError:
        raise ImproperlyConfigured("OUTBOUND_SECRET is not valid base64 after 'whsec_'.") from None
    if not 24 <= len(key) <= 64:
        raise ImproperlyConfigured(f"OUTBOUND_SECRET must hold 24 to 64 bytes, not {len(key)}.")
    return key


if OUTBOUND_SECRET:
    _outbound_secret_bytes(OUTBOUND_SECRET)
if OUTBOUND_URL:
    if not OUTBOUND_SECRET:
        raise ImproperlyConfigured("OUTBOUND_URL is set without OUTBOUND_SECRET: events must be signed.")
    _outbound = urllib.parse.urlsplit(OUTBOUND_URL)
    _loopback = _outbound.hostname in ("localhost", "127.0.0.1", "::1")
    if not (_outbound.hostname and (_outbound.scheme == "https" or (_outbound.scheme == "http" and _loopback))):
        raise ImproperlyConfigured("OUTBOUND_URL must be an https:// URL (http:// only to this host).")
try:
    OUTBOUND_RETRY_SCHEDULE = [float(_delay) for _delay in OUTBOUND_RETRY_SCHEDULE]
except ValueError:
    OUTBOUND_RETRY_SCHEDULE = []
if not OUTBOUND_RETRY_SCHEDULE or not all(0 <= _delay < float("inf") for _delay in OUTBOUND_RETRY_SCHEDULE):
    raise ImproperlyConfigured("OUTBOUND_RETRY_SCHEDULE must be a list of seconds (0 or more), e.g. 0,5,300.")
if not 0 < OUTBOUND_TIMEOUT <= 60:
    raise ImproperlyConfigured("OUTBOUND_TIMEOUT must be above 0 and at most 60 seconds.")

# --- Reconciliation with the networks' own APIs (manage.py reconcile) --------------------------------
# A network is reconciled when its API client id and secret are both set. The base URLs exist so that
# tests can point the clients at a local server.
EPN_API_CLIENT_ID = env.str("EPN_API_CLIENT_ID", default="")
EPN_API_CLIENT_SECRET = env.str("EPN_API_CLIENT_SECRET", default="")
EPN_API_URL = env.str("EPN_API_URL", default="https://app.epn.bz")
EPN_OAUTH_URL = env.str("EPN_OAUTH_URL", default="https://oauth2.epn.bz")
ADMITAD_CLIENT_ID = env.str("ADMITAD_CLIENT_ID", default="")
ADMITAD_CLIENT_SECRET = env.str("ADMITAD_CLIENT_SECRET", default="")
ADMITAD_API_URL = env.str("ADMITAD_API_URL", default="https://api.admitad.com")
# Each network's credential variables, by partner: what the setup wizard asks for and writes.
RECONCILE_CREDENTIAL_VARIABLES = {
    "epn_bz": ("EPN_API_CLIENT_ID", "EPN_API_CLIENT_SECRET"),
    "admitad": ("ADMITAD_CLIENT_ID", "ADMITAD_CLIENT_SECRET"),
}


def _api_url(variable: str, value: str) -> str:
    """A base URL of a network's API: HTTPS, or plain HTTP to loopback only (a test's local server)."""
    scheme, _, rest = value.partition("://")
    host = rest.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if scheme != "https" and not (scheme == "http" and host in ("127.0.0.1", "localhost", "::1")):
        raise ImproperlyConfigured(f"{variable} must be an https:// URL, got {value!r}.")
    return value.rstrip("/")


def _api_credentials(partner: str, client_id: str, client_secret: str) -> dict:
    if bool(client_id) != bool(client_secret):
        raise ImproperlyConfigured("{} and {} go together: set both, or neither.".format(
            *RECONCILE_CREDENTIAL_VARIABLES[partner]))
    return {"client_id": client_id, "client_secret": client_secret}


# What orders.reconcile gives each network's API client (see partners.api), by partner: only the
# networks whose credentials are set.
RECONCILE_APIS = {
    partner: config for partner, config in (
        ("epn_bz", {**_api_credentials("epn_bz", EPN_API_CLIENT_ID, EPN_API_CLIENT_SECRET),
                    "api_url": _api_url("EPN_API_URL", EPN_API_URL),
                    "oauth_url": _api_url("EPN_OAUTH_URL", EPN_OAUTH_URL)}),
        ("admitad", {**_api_credentials("admitad", ADMITAD_CLIENT_ID, ADMITAD_CLIENT_SECRET),
                     "api_url": _api_url("ADMITAD_API_URL", ADMITAD_API_URL)}),
    ) if config["client_id"]
}
# check_health warns when a reconciled network's last successful run is older than this; 0 turns it off.
try:
    RECONCILE_STALE_HOURS = float(env.str("RECONCILE_STALE_HOURS", default="6"))
except ValueError:
    RECONCILE_STALE_HOURS = -1.0
if not 0 <= RECONCILE_STALE_HOURS < float("inf"):
    raise ImproperlyConfigured("RECONCILE_STALE_HOURS must be a number of hours, 0 or more.")

# --- Staff passwords ----------------------------------------------------------------------------
# Django's standard policy, applied wherever a password is set through Django (createsuperuser,
# changepassword, the admin's password forms).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Admin login protection (django-axes) --------------------------------------------------------
# Failed logins are counted per client address; after AXES_FAILURE_LIMIT the address is locked out
# for AXES_COOLOFF_MINUTES. The address comes from our reverse proxy's header (orders.clientip, see
# TRUSTED_PROXIES):
# counting the proxy's own address would lock every user out at once, and trusting the client's
# header would let an attacker pick a new address per guess.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.int("AXES_COOLOFF_MINUTES", default=30) / 60  # axes takes hours
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
# Axes announces itself at INFO on every start; on stdout that would corrupt `check_health --json`.
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "orders.clientip.client_ip"
if AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured("AXES_FAILURE_LIMIT must be 1 or more.")

# --- Who may call the webhook --------------------------------------------------------------------
def _networks(values: list[str], variable: str) -> tuple:
    try:
        return tuple(ipaddress.ip_network(value.strip()) for value in values if value.strip())
    except ValueError as error:
        raise ImproperlyConfigured(f"{variable}: {error} (use CIDR ranges like 10.0.0.0/8 or 2001:db8::/32)") from None


# Proxies (CIDR list of their addresses, e.g. Traefik's) whose X-Forwarded-For is believed, read from the right.
# Empty: the TCP peer (REMOTE_ADDR) is the client and X-Forwarded-For is ignored.
TRUSTED_PROXIES = _networks(env.list("TRUSTED_PROXIES", default=[]), "TRUSTED_PROXIES")
# Optional allowlist per partner: "epn_bz:192.0.2.0/24;198.51.100.7/32,other:2001:db8::/32". A partner
# that is listed is accepted only from those ranges; one that is not listed, from anywhere.
WEBHOOK_ALLOWED_IPS: dict[str, tuple] = {}
for _item in env.list("WEBHOOK_ALLOWED_IPS", default=[]):
    _partner, _ranges = _partner_item(_item, "WEBHOOK_ALLOWED_IPS", "partner:cidr;cidr")
    if _partner in WEBHOOK_ALLOWED_IPS:
        raise ImproperlyConfigured(f"WEBHOOK_ALLOWED_IPS names {_partner!r} twice; list its ranges once, ';'-separated")
    WEBHOOK_ALLOWED_IPS[_partner] = _networks(_ranges.split(";"), f"WEBHOOK_ALLOWED_IPS for {_partner}")
# Wrong tokens one client address may send per minute before its answers turn from 404 to 429.
# Counted in the default cache: per process with the built-in local-memory cache. 0 turns it off.
WEBHOOK_BAD_TOKEN_LIMIT = env.int("WEBHOOK_BAD_TOKEN_LIMIT", default=20)
