"""`manage.py setup`: everything a production install needs, asked once and written to `.env`.

The command is thin; this module holds the steps so that tests call them directly:
- `Answers.from_settings` takes the current configuration (environment, then an existing .env, as read
  by epnhook/settings.py) as the defaults, so a re-run offers the current values and automation can
  pass every secret through the environment instead of the command line;
- `ask` walks through the questions on a `Prompter` (a terminal, or none with --no-input), the networks' API
  credentials for reconciliation last, each optional;
- `check_database` connects to MariaDB, checks utf8mb4 and creates the database when allowed;
- `render_env` / `write_env` produce the file: mode 600, written atomically, the previous one kept as a
  backup, and every line the wizard does not manage carried over;
- `run_manage` runs collectstatic, migrate, createsuperuser, sendtestemail and check --deploy as child
  processes that load the new file, exactly as the service will;
- `next_steps` says what serves the install: docker compose, or the systemd units in systemd/.
"""

import base64
import getpass
import hashlib
import importlib.util
import os
import re
import secrets
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings as django_settings

from partners.registry import PARTNERS
from partners.tokens import webhook_urls

# 256 bits of randomness, URL-safe: 43 characters (orders.checks.MIN_TOKEN_LENGTH).
TOKEN_BYTES = 32
SECRET_KEY_BYTES = 50
OUTBOUND_SECRET_BYTES = 32
# Django's check --deploy wants a SECRET_KEY of at least 50 characters.
MIN_SECRET_KEY_LENGTH = 50
DOCKER_DB_HOST = "db"
SMTP_SECURITY_PORTS = {"tls": 587, "ssl": 465, "none": 25}
SMTP_SCHEMES = {"tls": "smtp+tls", "ssl": "smtp+ssl", "none": "smtp"}
MAIL_CHOICES = ("smtp", "anymail", "console")
# Variables the wizard writes; any other line of an existing .env is carried over unchanged.
# ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS are derived from DOMAIN, so an old value is dropped. The wizard
# also writes ROOT_PASSWORD_HASH_KEY, but only into a file that has none: an existing one is carried over.
MANAGED_KEYS = frozenset({
    "DEBUG", "SECRET_KEY", "DOMAIN", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "MARIADB_PASSWORD",
    "WEBHOOK_SECRET_TOKEN", "WEBHOOK_TOKENS", "ADMINS", "EMAIL_URL", "ANYMAIL_API_KEY", "ANYMAIL_SETTINGS",
    "DEFAULT_FROM_EMAIL",
    # The networks' API credentials (settings.RECONCILE_CREDENTIAL_VARIABLES).
    "EPN_API_CLIENT_ID", "EPN_API_CLIENT_SECRET", "ADMITAD_CLIENT_ID", "ADMITAD_CLIENT_SECRET",
})
# docker compose gives it to the MariaDB container, once, when its volume is new.
ROOT_PASSWORD_HASH_KEY = "MARIADB_ROOT_PASSWORD_HASH"
_ENV_LINE = re.compile(r"\A(?:export )?([A-Za-z_0-9]+)=")
_DOMAIN = re.compile(r"\A(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]\Z")
_EMAIL = re.compile(r"\A[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+\Z")


class SetupError(Exception):
    """A problem the operator must fix; the message says how."""


@dataclass
class Answers:
    domain: str = ""
    db_host: str = "127.0.0.1"
    db_port: int = 3306
    db_name: str = "epnhook"
    db_user: str = "epnhook"
    db_password: str = ""
    admins: list[str] = field(default_factory=list)
    mail: str = "smtp"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "tls"
    smtp_user: str = ""
    smtp_password: str = ""
    anymail_provider: str = ""
    anymail_key: str = ""
    anymail_settings: list[str] = field(default_factory=list)
    from_email: str = ""
    secret_key: str = ""
    # Every network's webhook tokens, (partner, token), as settings.WEBHOOK_TOKENS holds them.
    tokens: list[tuple[str, str]] = field(default_factory=list)
    # The API credentials of the networks reconciled, {partner: (client id, client secret)}.
    api_credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The cashback site's endpoint for outbound events, and the secret they are signed with (README).
    outbound_url: str = ""
    outbound_secret: str = ""

    @classmethod
    def from_settings(cls, settings) -> "Answers":
        """The current configuration as defaults. A development or too short SECRET_KEY is left empty, to be
        generated; webhook tokens are always kept, since the network's dashboard holds the URL."""
        answers = cls(domain=settings.DOMAIN or next(
            (host for host in settings.ALLOWED_HOSTS if _DOMAIN.match(host)), ""))
        db = settings.DATABASES["default"]
        if db["ENGINE"] == "django.db.backends.mysql":
            answers.db_host = db.get("HOST") or answers.db_host
            answers.db_port = int(db.get("PORT") or answers.db_port)
            answers.db_name, answers.db_user, answers.db_password = db["NAME"], db.get("USER", ""), db.get(
                "PASSWORD", "")
        answers.admins = [f"{name} <{address}>" if name else address for name, address in settings.ADMINS]
        answers.read_email_url(settings.EMAIL_URL)
        if answers.mail == "anymail":
            extra = {key: value for key, value in settings.ANYMAIL.items() if key != settings.ANYMAIL_CREDENTIAL}
            answers.anymail_key = settings.ANYMAIL.get(settings.ANYMAIL_CREDENTIAL, "")
            answers.anymail_settings = [f"{key}={value}" for key, value in extra.items()]
        if not settings.DEFAULT_FROM_EMAIL.endswith("@localhost"):  # the default is no address to send from
            answers.from_email = settings.DEFAULT_FROM_EMAIL
        if len(settings.SECRET_KEY) >= MIN_SECRET_KEY_LENGTH and not settings.DEBUG:
            answers.secret_key = settings.SECRET_KEY
        # Replacing a token would answer 404 to every postback until the dashboard is changed; a short one
        # is reported by check --deploy (epnhook.W002) at the end instead. Every network's are kept.
        answers.tokens = list(settings.WEBHOOK_TOKENS)
        answers.api_credentials = {partner: (config["client_id"], config["client_secret"])
                                   for partner, config in settings.RECONCILE_APIS.items()}
        # The site verifies with the secret it was given: kept, like the webhook tokens.
        answers.outbound_url, answers.outbound_secret = settings.OUTBOUND_URL, settings.OUTBOUND_SECRET
        return answers

    def read_email_url(self, email_url: str) -> None:
        url = urlsplit(email_url)
        if url.scheme == "anymail":
            self.mail, self.anymail_provider = "anymail", url.netloc
        elif url.scheme in SMTP_SCHEMES.values():
            self.mail = "smtp"
            self.smtp_security = next(key for key, scheme in SMTP_SCHEMES.items() if scheme == url.scheme)
            self.smtp_host = url.hostname or ""
            self.smtp_port = url.port or SMTP_SECURITY_PORTS[self.smtp_security]
            self.smtp_user, self.smtp_password = unquote(url.username or ""), unquote(url.password or "")
        elif url.scheme == "consolemail" and self.domain:
            # A configured install that deliberately prints mail keeps doing so.
            self.mail = "console"

    @property
    def database_url(self) -> str:
        credentials = f"{quote(self.db_user, safe='')}:{quote(self.db_password, safe='')}@"
        return f"mysql://{credentials}{self.db_host}:{self.db_port}/{self.db_name}"

    @property
    def email_url(self) -> str:
        if self.mail == "anymail":
            return f"anymail://{self.anymail_provider}"
        if self.mail == "console":
            return "consolemail://"
        credentials = ""
        if self.smtp_user:
            credentials = f"{quote(self.smtp_user, safe='')}:{quote(self.smtp_password, safe='')}@"
        return f"{SMTP_SCHEMES[self.smtp_security]}://{credentials}{self.smtp_host}:{self.smtp_port}"

    def postback_urls(self) -> list[tuple[str, str]]:
        """(network name, the URL to paste into its dashboard) for each network that has a token."""
        return [(partner.name, partner.postback_url(url)) for partner, url in webhook_urls(f"https://{self.domain}",
                                                                                              self.tokens)]

    def generate_missing_secrets(self) -> None:
        self.secret_key = self.secret_key or secrets.token_urlsafe(SECRET_KEY_BYTES)
        # A fresh install gets a token for the network WEBHOOK_SECRET_TOKEN is for (EPN.bz).
        if not self.tokens:
            self.tokens = [(django_settings.WEBHOOK_SECRET_TOKEN_PARTNER, secrets.token_urlsafe(TOKEN_BYTES))]
        if self.outbound_url and not self.outbound_secret:
            self.outbound_secret = new_outbound_secret()

    def validate(self) -> None:
        """Raise SetupError naming the first answer that cannot work."""
        if not _DOMAIN.match(self.domain):
            raise SetupError(f"{self.domain!r} is not a domain name like webhook.example.com.")
        if not self.db_name or not re.fullmatch(r"[A-Za-z0-9_$]{1,64}", self.db_name):
            raise SetupError("The database name may hold letters, digits, _ and $ only (up to 64).")
        if not self.admins:
            raise SetupError("At least one alert address is needed: postbacks that cannot be stored alert it.")
        for admin in self.admins:
            if not _EMAIL.match(admin.rpartition("<")[2].rstrip(">").strip()):
                raise SetupError(f"{admin!r} is not an email address.")
        if self.mail not in MAIL_CHOICES:
            raise SetupError(f"Mail must be one of {', '.join(MAIL_CHOICES)}.")
        if self.mail == "smtp" and (not self.smtp_host or self.smtp_security not in SMTP_SCHEMES):
            raise SetupError("SMTP needs a host and an encryption of tls, ssl or none.")
        known = re.fullmatch(r"[a-z_]+", self.anymail_provider) and importlib.util.find_spec(
            f"anymail.backends.{self.anymail_provider}") is not None
        if self.mail == "anymail" and not (known and self.anymail_key):
            raise SetupError("A django-anymail provider it knows (mailgun, postmark, sendgrid, amazon_ses, ...) and "
                             "its API key are needed.")
        for partner, (client_id, client_secret) in self.api_credentials.items():
            if bool(client_id) != bool(client_secret):
                raise SetupError(f"{PARTNERS[partner].name}'s API needs both its client id and its client secret.")
        if self.outbound_url and not re.fullmatch(r"https://[^\s/?#]+(/\S*)?", self.outbound_url):
            raise SetupError(f"{self.outbound_url!r} is not an https:// URL for the site's endpoint.")


def new_outbound_secret() -> str:
    """A signing secret as Standard Webhooks has it: whsec_ + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(OUTBOUND_SECRET_BYTES)).decode()


class Prompter:
    """Asks on the terminal: plain questions with input(), passwords with getpass (no echo)."""

    def __init__(self, write):
        self.write = write

    def ask(self, question: str, default: str = "", *, secret: bool = False) -> str:
        shown = "keep current" if secret else default
        prompt = f"{question} [{shown}]: " if default else f"{question}: "
        answer = (getpass.getpass(prompt) if secret else input(prompt)).strip()
        return answer or default

    def confirm(self, question: str, default: bool = True) -> bool:
        while True:
            answer = input(f"{question} [{'Y/n' if default else 'y/N'}]: ").strip().lower()
            if not answer:
                return default
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")
            self.write("Please answer y or n.")

    def choose(self, question: str, choices: tuple[str, ...], default: str) -> str:
        while True:
            answer = self.ask(f"{question} ({' / '.join(choices)})", default)
            if answer in choices:
                return answer
            self.write(f"Please answer one of: {', '.join(choices)}.")


def ask_domain(answers: Answers, prompter: Prompter) -> None:
    prompter.write("\nThe public domain name that points at this server (for example webhook.example.com).")
    answers.domain = prompter.ask("Domain", answers.domain).lower()


def ask_database(answers: Answers, prompter: Prompter) -> None:
    prompter.write("\nMariaDB connection (the database is created, utf8mb4, if it is missing and you may).")
    answers.db_host = prompter.ask("Host", answers.db_host)
    answers.db_port = _ask_int(prompter, "Port", answers.db_port)
    answers.db_name = prompter.ask("Database", answers.db_name)
    answers.db_user = prompter.ask("User", answers.db_user)
    answers.db_password = prompter.ask("Password", answers.db_password, secret=True)


def ask_mail(answers: Answers, prompter: Prompter) -> None:
    prompter.write("\nAlerts (database down, postbacks spooled, errors) go by email.")
    admins = prompter.ask("Alert address(es), comma-separated", ", ".join(answers.admins))
    answers.admins = [item.strip() for item in admins.split(",") if item.strip()]
    answers.mail = prompter.choose("Send mail through", MAIL_CHOICES[:2], answers.mail if answers.mail in
                                   MAIL_CHOICES[:2] else "smtp")
    if answers.mail == "smtp":
        answers.smtp_host = prompter.ask("SMTP host", answers.smtp_host)
        answers.smtp_security = prompter.choose("Encryption", tuple(SMTP_SCHEMES), answers.smtp_security)
        # A custom port is kept; a standard one follows the encryption just chosen.
        standard = answers.smtp_port in SMTP_SECURITY_PORTS.values()
        answers.smtp_port = _ask_int(prompter, "SMTP port", SMTP_SECURITY_PORTS[answers.smtp_security] if standard
                                     else answers.smtp_port)
        answers.smtp_user = prompter.ask("SMTP user (empty: none)", answers.smtp_user)
        if answers.smtp_user:
            answers.smtp_password = prompter.ask("SMTP password", answers.smtp_password, secret=True)
    else:
        answers.anymail_provider = prompter.ask("django-anymail provider (mailgun, postmark, sendgrid, ...)",
                                                answers.anymail_provider).lower()
        answers.anymail_key = prompter.ask("API key", answers.anymail_key, secret=True)
    answers.from_email = prompter.ask("Send alerts from", answers.from_email or f"epnhook@{answers.domain}")


def ask_api_credentials(answers: Answers, prompter: Prompter) -> None:
    """Optional: each network's API credentials, with which manage.py reconcile finds the postbacks that
    never arrived. An empty client id (where none is set) skips the network; "-" removes one that is set."""
    prompter.write("\nReconciliation (optional): with a network's API credentials, manage.py reconcile finds the "
                   "orders whose postbacks never arrived. Leave the client id empty to skip; \"-\" removes it.")
    for partner in django_settings.RECONCILE_CREDENTIAL_VARIABLES:
        name = PARTNERS[partner].name
        client_id, client_secret = answers.api_credentials.get(partner, ("", ""))
        client_id = prompter.ask(f"{name} API client id{'' if client_id else ' (empty: none)'}", client_id)
        if client_id in ("", "-"):
            answers.api_credentials.pop(partner, None)
            continue
        client_secret = prompter.ask(f"{name} API client secret", client_secret, secret=True)
        answers.api_credentials[partner] = (client_id, client_secret)


def ask_outbound(answers: Answers, prompter: Prompter) -> None:
    """Optional: the cashback site's endpoint for the signed outbound events (README: "Outbound events");
    "-" removes it. A secret is generated for a new endpoint and printed at the end, for the site."""
    prompter.write("\nOutbound events (optional): every change of an order's status, sent signed to the cashback "
                   "site. Leave empty for none; \"-\" removes it.")
    url = prompter.ask(f"The site's endpoint{'' if answers.outbound_url else ' (empty: none)'}", answers.outbound_url)
    answers.outbound_url = "" if url == "-" else url
    if not answers.outbound_url:
        answers.outbound_secret = ""


def ask(answers: Answers, prompter: Prompter, *, docker: bool) -> None:
    """Ask every question, offering `answers` as the defaults, until the answers validate."""
    while True:
        ask_domain(answers, prompter)
        if not docker:
            ask_database(answers, prompter)
        ask_mail(answers, prompter)
        ask_api_credentials(answers, prompter)
        ask_outbound(answers, prompter)
        try:
            answers.validate()
            return
        except SetupError as error:
            prompter.write(f"\n{error} Let us go through the questions again (your answers are the defaults).")


def _ask_int(prompter: Prompter, question: str, default: int) -> int:
    while True:
        answer = prompter.ask(question, str(default))
        if answer.isdigit() and 0 < int(answer) < 65536:
            return int(answer)
        prompter.write("Please give a port number.")


def use_docker_database(answers: Answers) -> None:
    """docker compose runs MariaDB itself: a fixed host, user and name, and a generated password."""
    if answers.db_host != DOCKER_DB_HOST or not answers.db_password:
        answers.db_password = secrets.token_urlsafe(24)
    answers.db_host, answers.db_port, answers.db_name, answers.db_user = DOCKER_DB_HOST, 3306, "epnhook", "epnhook"


# --- MariaDB --------------------------------------------------------------------------------------

def check_database(answers: Answers, *, may_create) -> str:
    """Connect, check the charset, and create the database if missing and `may_create()` agrees.

    Returns what was found or done; raises SetupError with the fix when the database is unusable.
    """
    import MySQLdb

    try:
        connection = MySQLdb.connect(host=answers.db_host, port=answers.db_port, user=answers.db_user,
                                     password=answers.db_password, connect_timeout=5, charset="utf8mb4")
    except MySQLdb.OperationalError as error:
        raise SetupError(f"Cannot connect to MariaDB at {answers.db_host}:{answers.db_port} as "
                         f"{answers.db_user}: {error.args[-1]}") from None
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT @@character_set_connection")
        if cursor.fetchone()[0] != "utf8mb4":
            raise SetupError("The server does not speak utf8mb4 on this connection; MariaDB 10.5 or newer is needed.")
        cursor.execute("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                       [answers.db_name])
        row = cursor.fetchone()
        create_sql = f"CREATE DATABASE `{answers.db_name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        if row is not None:
            if row[0] != "utf8mb4":
                raise SetupError(
                    f"Database {answers.db_name} uses {row[0]}, which cannot store every postback. Convert it "
                    f"while it is empty: ALTER DATABASE `{answers.db_name}` CHARACTER SET utf8mb4 "
                    "COLLATE utf8mb4_unicode_ci;")
            return f"Database {answers.db_name} exists and uses utf8mb4."
        grant = f"GRANT ALL ON `{answers.db_name}`.* TO '{answers.db_user}'@'%';"
        if not _may_create_database(cursor, answers.db_name):
            raise SetupError(f"Database {answers.db_name} does not exist and {answers.db_user} may not create it. "
                             f"Ask your database administrator to run: {create_sql}; {grant}")
        if not may_create():
            raise SetupError(f"Database {answers.db_name} does not exist. Create it with: {create_sql};")
        cursor.execute(create_sql)
        return f"Created database {answers.db_name} (utf8mb4)."
    finally:
        connection.close()


def _may_create_database(cursor, name: str) -> bool:
    """Whether the connected user holds CREATE globally or on a schema pattern that covers `name`."""
    cursor.execute(
        "SELECT 1 FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE = 'CREATE' "
        "UNION SELECT 1 FROM information_schema.SCHEMA_PRIVILEGES "
        "WHERE PRIVILEGE_TYPE = 'CREATE' AND %s LIKE TABLE_SCHEMA",
        [name],
    )
    return cursor.fetchone() is not None


# --- .env -----------------------------------------------------------------------------------------

def render_env(answers: Answers, *, docker: bool, kept_lines: list[str]) -> str:
    """The .env text. Values are single-quoted: both django-environ and docker compose take them literally."""
    values = {
        "DEBUG": "False",
        "SECRET_KEY": answers.secret_key,
        "DOMAIN": answers.domain,
        "DATABASE_URL": answers.database_url,
        "ADMINS": ",".join(answers.admins),
        "EMAIL_URL": answers.email_url,
        "DEFAULT_FROM_EMAIL": answers.from_email or f"epnhook@{answers.domain}",
    }
    # The tokens of the network WEBHOOK_SECRET_TOKEN is for go there, as make run writes them; any other
    # network's to WEBHOOK_TOKENS.
    secret_partner = django_settings.WEBHOOK_SECRET_TOKEN_PARTNER
    if own := [token for partner, token in answers.tokens if partner == secret_partner]:
        values["WEBHOOK_SECRET_TOKEN"] = ",".join(own)
    if others := [f"{partner}:{token}" for partner, token in answers.tokens if partner != secret_partner]:
        values["WEBHOOK_TOKENS"] = ",".join(others)
    for partner, credentials in answers.api_credentials.items():
        values.update(zip(django_settings.RECONCILE_CREDENTIAL_VARIABLES[partner], credentials, strict=True))
    if answers.outbound_url:
        values.update(OUTBOUND_URL=answers.outbound_url, OUTBOUND_SECRET=answers.outbound_secret)
    if answers.mail == "anymail":
        values["ANYMAIL_API_KEY"] = answers.anymail_key
        if answers.anymail_settings:
            values["ANYMAIL_SETTINGS"] = ",".join(answers.anymail_settings)
    if docker:
        # Read by docker compose for the MariaDB container; the same password is inside DATABASE_URL.
        values["MARIADB_PASSWORD"] = answers.db_password
        # root's password is random and known to nobody; the image takes its hash. The container keeps the
        # one it was initialised with, so a hash carried over from the previous file stays.
        if ROOT_PASSWORD_HASH_KEY not in {match.group(1) for line in kept_lines if (match := _ENV_LINE.match(line))}:
            values[ROOT_PASSWORD_HASH_KEY] = mariadb_password_hash(secrets.token_urlsafe(32))
    lines = [f"# Written by manage.py setup on {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}. It holds secrets:",
             "# keep it mode 600, out of version control and out of backups you do not trust.",
             "# Every variable is described in .env.example."]
    lines += [f"{key}={_quote(key, value)}" for key, value in values.items()]
    if kept_lines:
        lines += ["", "# Kept from the previous .env"] + kept_lines
    return "\n".join(lines) + "\n"


def mariadb_password_hash(password: str) -> str:
    """MariaDB's mysql_native_password hash of `password`, as SELECT PASSWORD(...) gives it."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _quote(key: str, value: str) -> str:
    if "'" in value or "\n" in value:
        raise SetupError(f"{key} may not contain a single quote or a line break.")
    return f"'{value}'"


def unmanaged_lines(text: str) -> list[str]:
    """Lines of an existing .env that set a variable the wizard does not manage."""
    kept = []
    for line in text.splitlines():
        match = _ENV_LINE.match(line)
        if match and match.group(1) not in MANAGED_KEYS:
            kept.append(line)
    return kept


def write_env(path: Path, text: str, *, force: bool) -> Path | None:
    """Write `text` to `path` with mode 600, atomically. Returns the backup of the previous file, if any.

    Refuses (SetupError) to replace an existing file unless `force`; the replaced file is kept beside
    it as .env.bak-<timestamp>, mode 600 as well.
    """
    backup = None
    if path.exists():
        if not force:
            raise SetupError(f"{path} exists; refusing to overwrite it. Run again with --force to replace it "
                             "(the current file is kept as a backup, and its values are offered as defaults).")
        backup = path.with_name(f"{path.name}.bak-{datetime.now():%Y%m%d-%H%M%S}")
        try:
            write_private(backup, path.read_bytes())
        except FileExistsError:
            raise SetupError(f"{backup} exists already; run again in a second.") from None
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write_private(temporary, text.encode())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return backup


def write_private(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist) readable by its owner only from the first moment, write `data`
    and flush it to disk. A file created first and narrowed afterwards would be readable in between."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


# --- Steps that run with the new .env ----------------------------------------------------------------

def next_steps(base_dir: Path, domain: str, *, docker: bool) -> str:
    """What serves the install, for the way it was set up: docker compose, or the systemd units in systemd/
    (README: "Deploy with docker compose", "Serve with systemd")."""
    if docker:
        compose = "docker compose -f docker/compose.yaml --env-file .env"
        return f"Next:\n    {compose} up -d\n    {compose} exec web python manage.py createsuperuser\n"
    checkout = shlex.quote(str(base_dir))
    return (
        "Next, serve it with systemd, as root (README: \"Serve with systemd\"):\n"
        f"    cp {checkout}/systemd/epnhook* /etc/systemd/system/ && systemctl daemon-reload\n"
        f"    systemctl enable --now \"epnhook@$(systemd-escape --path {checkout}).target\"\n"
        f"and put a reverse proxy with TLS for https://{domain} in front of 127.0.0.1:8000.\n"
    )


def run_manage(base_dir: Path, env_file: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run `manage.py <args>` in a child process that reads `env_file`, as the service itself will.

    Without `capture` the child shares this terminal, so createsuperuser can ask its own questions.
    """
    environment = {**os.environ, "ENV_FILE": str(env_file), "DJANGO_SETTINGS_MODULE": "epnhook.settings"}
    environment.pop("SETUP_WIZARD", None)  # the child needs the key the new file holds
    return subprocess.run([sys.executable, str(base_dir / "manage.py"), *args], env=environment, cwd=base_dir,
                          capture_output=capture, text=True)
