"""manage.py setup: the wizard in a real terminal (pexpect), its non-interactive mode, and its steps.

The wizard runs as a child process with a clean environment, as an operator would run it: it reads
and writes the .env named by ENV_FILE in a temporary directory. Tests that go as far as MariaDB use
the server of the test run, on a database of their own (<test database>_wizard) that they drop.
"""

import ast
import base64
import io
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from unittest import mock

import environ
import MySQLdb
import pexpect
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from django.conf import settings
from django.db import connection

from devtools.mariadb import PrivateMariaDB, free_port
from orders import setup_wizard as wizard
from tests.factories import load_settings

BASE_DIR = Path(settings.BASE_DIR)
SMTP_USER, SMTP_PASSWORD = "alerts", "smtp-pass-Zq8!secret"
EPN_CLIENT_ID, EPN_CLIENT_SECRET = "epn-client-7", "epn-secret-Wq3"


def clean_environment(env_file: Path, **extra) -> dict:
    """What an operator's shell has: no Django settings, just the file to write."""
    # English, so that the prompts of Django's own createsuperuser can be matched.
    return {"PATH": os.environ["PATH"], "HOME": str(env_file.parent), "LANG": "C.UTF-8", "LANGUAGE_CODE": "en",
            "ENV_FILE": str(env_file), **extra}


def spawn_setup(env_file: Path, *args: str) -> pexpect.spawn:
    """The wizard on a pseudo-terminal; `child.logfile_read` keeps everything the terminal showed."""
    child = pexpect.spawn(sys.executable, ["manage.py", "setup", *args], cwd=str(BASE_DIR),
                          env=clean_environment(env_file), encoding="utf-8", timeout=60, dimensions=(50, 200))
    child.logfile_read = io.StringIO()
    return child


def answer(child: pexpect.spawn, prompt: str, text: str) -> None:
    child.expect(prompt)
    child.sendline(text)


def read_env(path: Path) -> dict:
    """The variables as django-environ (what settings.py uses) reads them."""
    names = [match.group(1) for match in re.finditer(r"^(?:export )?([A-Z_]+)=", path.read_text(), re.M)]
    with mock.patch.dict(os.environ, clear=True):
        environ.Env.read_env(str(path), overwrite=True)
        return {name: os.environ[name] for name in names}


def run_manage(env_file: Path, *args: str, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=clean_environment(env_file, **extra),
                          capture_output=True, text=True, timeout=120)


class Mailbox:
    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=(auth_data.login.decode(), auth_data.password.decode()) == (SMTP_USER, SMTP_PASSWORD))


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback that requires a login (over plain SMTP: it is loopback)."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), authenticator=mailbox.authenticate,
                            auth_require_tls=False)
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def wizard_database():
    """Connection answers for the test run's MariaDB, and a database name of our own, dropped afterwards."""
    db = connection.settings_dict
    answers = wizard.Answers(db_host=db["HOST"] or "127.0.0.1", db_port=int(db["PORT"] or 3306),
                             db_name=f"{db['NAME']}_wizard", db_user=db["USER"], db_password=db["PASSWORD"])
    server = MySQLdb.connect(host=answers.db_host, port=answers.db_port, user=answers.db_user,
                             password=answers.db_password)
    drop = f"DROP DATABASE IF EXISTS `{answers.db_name}`"
    server.cursor().execute(drop)
    yield answers, server
    server.cursor().execute(drop)
    server.close()


@pytest.fixture
def env_file(tmp_path):
    return tmp_path / ".env"


def test_refuses_to_overwrite_an_existing_env(env_file):
    env_file.write_text("SECRET_KEY=precious\n")
    child = spawn_setup(env_file)
    child.expect("refusing to overwrite it")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0
    assert env_file.read_text() == "SECRET_KEY=precious\n"
    assert list(env_file.parent.iterdir()) == [env_file]  # no backup, no temporary file


def test_non_interactive_without_a_domain_names_what_is_missing(env_file):
    result = run_manage(env_file, "setup", "--no-input", "--admins", "ops@example.com", "--mail", "console")
    assert result.returncode != 0
    assert "is not a domain name" in result.stderr
    assert not env_file.exists()


@pytest.mark.mariadb
def test_fresh_setup_in_a_terminal(env_file, wizard_database, smtp_server):
    answers, server = wizard_database
    controller, mailbox = smtp_server
    child = spawn_setup(env_file)
    answer(child, r"Domain: ", "Webhook.Example.com")
    answer(child, r"Host \[127.0.0.1\]: ", answers.db_host)
    answer(child, r"Port \[3306\]: ", str(answers.db_port))
    answer(child, r"Database \[epnhook\]: ", answers.db_name)
    answer(child, r"User \[epnhook\]: ", answers.db_user)
    answer(child, r"Password: ", answers.db_password)
    answer(child, r"Alert address\(es\), comma-separated: ", "Ops <ops@example.com>, oncall@example.com")
    answer(child, r"Send mail through \(smtp / anymail\) \[smtp\]: ", "")
    answer(child, r"SMTP host: ", "127.0.0.1")
    answer(child, r"Encryption \(tls / ssl / none\) \[tls\]: ", "none")
    answer(child, r"SMTP port \[25\]: ", str(controller.port))
    answer(child, r"SMTP user \(empty: none\): ", SMTP_USER)
    answer(child, r"SMTP password: ", SMTP_PASSWORD)
    answer(child, r"Send alerts from \[epnhook@webhook.example.com\]: ", "")
    answer(child, r"EPN.bz API client id \(empty: none\): ", EPN_CLIENT_ID)
    answer(child, r"EPN.bz API client secret: ", EPN_CLIENT_SECRET)
    answer(child, r"Admitad API client id \(empty: none\): ", "")
    answer(child, r"The site's endpoint \(empty: none\): ", "https://site.example.com/hooks/epnhook")
    answer(child, r"does not exist. Create it \(utf8mb4\)\? \[Y/n\]: ", "y")
    answer(child, r"Send a test email to the alert addresses now\? \[Y/n\]: ", "")
    child.expect(r"Applying orders\.0001_initial\.\.\..* OK")
    answer(child, r"Create an admin \(superuser\) account now\? \[Y/n\]: ", "y")
    answer(child, r"Username.*: ", "boss")
    answer(child, r"Email address: ", "boss@example.com")
    answer(child, r"Password: ", "a-long-admin-password")
    answer(child, r"Password \(again\): ", "a-long-admin-password")
    child.expect(r"Superuser created successfully")
    child.expect(r"https://webhook\.example\.com/webhook/([A-Za-z0-9_-]+)\r\n")
    token = child.match.group(1)
    child.expect(r"Admin: https://webhook\.example\.com/admin/")
    child.expect(r"give it to the site.*\r\n +(whsec_[A-Za-z0-9+/=]+)\r\n")
    outbound_secret = child.match.group(1)
    child.expect(pexpect.EOF)
    transcript = child.logfile_read.getvalue()
    child.close()
    assert child.exitstatus == 0, transcript

    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = read_env(env_file)
    assert values["WEBHOOK_SECRET_TOKEN"] == token and len(token) == 43  # 32 random bytes
    assert values["DOMAIN"] == "webhook.example.com"
    assert values["ADMINS"] == "Ops <ops@example.com>,oncall@example.com"
    assert values["EMAIL_URL"] == f"smtp://{SMTP_USER}:{SMTP_PASSWORD.replace('!', '%21')}@127.0.0.1:{controller.port}"
    assert len(values["SECRET_KEY"]) >= 50
    # The passwords were typed without echo; plain answers do echo, so the transcript is complete.
    assert SMTP_USER in transcript and "Webhook.Example.com" in transcript
    assert SMTP_PASSWORD not in transcript and "a-long-admin-password" not in transcript
    assert EPN_CLIENT_SECRET not in transcript
    # The API credentials, for reconciliation; Admitad's were skipped.
    assert (values["EPN_API_CLIENT_ID"], values["EPN_API_CLIENT_SECRET"]) == (EPN_CLIENT_ID, EPN_CLIENT_SECRET)
    assert "ADMITAD_CLIENT_ID" not in values
    # Outbound events: the endpoint, and the secret printed for the site, 32 random bytes.
    assert values["OUTBOUND_URL"] == "https://site.example.com/hooks/epnhook"
    assert values["OUTBOUND_SECRET"] == outbound_secret and len(base64.b64decode(outbound_secret[6:])) == 32
    # The test email went through the configured server, with the configured login.
    assert mailbox.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert sorted(mailbox.messages[0].rcpt_tos) == ["oncall@example.com", "ops@example.com"]
    cursor = server.cursor()
    cursor.execute("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                   [answers.db_name])
    assert cursor.fetchone() == ("utf8mb4",)
    cursor.execute(f"SELECT username, is_superuser FROM `{answers.db_name}`.auth_user")
    assert cursor.fetchall() == (("boss", 1),)
    # The file loads, and production checks pass with it.
    check = run_manage(env_file, "check", "--deploy", "--fail-level", "WARNING")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no issues" in check.stdout


@pytest.mark.mariadb
def test_rerun_with_force_offers_current_values_keeps_secrets_and_a_backup(env_file, wizard_database):
    answers, _ = wizard_database
    first = run_manage(env_file, "setup", "--no-input", "--domain", "webhook.example.com", "--admins",
                       "ops@example.com", "--mail", "console", "--create-database", "--skip-migrate", DATABASE_URL=
                       f"mysql://{answers.db_user}:{answers.db_password}@{answers.db_host}:{answers.db_port}/"
                       f"{answers.db_name}")
    assert first.returncode == 0, first.stderr
    with env_file.open("a") as stream:
        stream.write("LOG_FORMAT=json\nALLOWED_HOSTS=stale.example.com\n")
    before = env_file.read_text()
    old = read_env(env_file)

    child = spawn_setup(env_file, "--force")
    answer(child, r"Domain \[webhook\.example\.com\]: ", "")
    answer(child, rf"Host \[{re.escape(answers.db_host)}\]: ", "")
    answer(child, rf"Port \[{answers.db_port}\]: ", "")
    answer(child, rf"Database \[{answers.db_name}\]: ", "")
    answer(child, rf"User \[{answers.db_user}\]: ", "")
    answer(child, r"Password( \[keep current\])?: ", "")
    answer(child, r"Alert address\(es\), comma-separated \[ops@example\.com\]: ", "")
    # The old file printed mail; the terminal offers the two real transports, SMTP first.
    answer(child, r"Send mail through \(smtp / anymail\) \[smtp\]: ", "anymail")
    answer(child, r"django-anymail provider .*: ", "mailgun")
    answer(child, r"API key: ", "key-123-mailgun")
    answer(child, r"Send alerts from \[epnhook@webhook\.example\.com\]: ", "")
    answer(child, r"EPN.bz API client id \(empty: none\): ", "")
    answer(child, r"Admitad API client id \(empty: none\): ", "")
    answer(child, r"The site's endpoint \(empty: none\): ", "")
    child.expect("exists and uses utf8mb4")
    answer(child, r"Send a test email to the alert addresses now\? \[Y/n\]: ", "n")
    answer(child, r"Create an admin \(superuser\) account now\? \[Y/n\]: ", "n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before

    new = read_env(env_file)
    for key in ("SECRET_KEY", "WEBHOOK_SECRET_TOKEN", "DATABASE_URL", "DOMAIN", "ADMINS"):
        assert new[key] == old[key], key
    assert "OUTBOUND_URL" not in new  # no endpoint was given
    assert new["EMAIL_URL"] == "anymail://mailgun" and new["ANYMAIL_API_KEY"] == "key-123-mailgun"
    assert new["LOG_FORMAT"] == "json"  # a line the wizard does not manage is carried over
    assert "ALLOWED_HOSTS" not in new  # derived from DOMAIN now
    backups = list(env_file.parent.glob(".env.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == before
    assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600


@pytest.mark.mariadb
def test_non_interactive_setup_from_flags_and_environment(env_file, wizard_database, smtp_server):
    answers, server = wizard_database
    controller, mailbox = smtp_server
    result = run_manage(
        env_file, "setup", "--no-input", "--domain", "hooks.example.org", "--admins", "ops@example.org",
        "--mail", "smtp", "--smtp-host", "127.0.0.1", "--smtp-port", str(controller.port), "--smtp-security", "none",
        "--create-database", "--test-email",
        # Secrets come through the environment, never the command line.
        DATABASE_URL=f"mysql://{answers.db_user}:{answers.db_password}@{answers.db_host}:{answers.db_port}/"
                     f"{answers.db_name}",
    )
    assert result.returncode == 0, result.stderr
    values = read_env(env_file)
    assert f"https://hooks.example.org/webhook/{values['WEBHOOK_SECRET_TOKEN']}" in result.stdout
    assert values["EMAIL_URL"] == f"smtp://127.0.0.1:{controller.port}"
    assert [message.rcpt_tos for message in mailbox.messages] == [["ops@example.org"]]
    cursor = server.cursor()
    cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                   [answers.db_name, "orders_order"])
    assert cursor.fetchone() == (1,)  # migrated
    assert "check --deploy reports problems" not in result.stderr


@pytest.mark.mariadb
def test_non_interactive_setup_does_not_create_a_database_unasked(env_file, wizard_database):
    answers, _ = wizard_database
    result = run_manage(env_file, "setup", "--no-input", "--domain", "hooks.example.org", "--admins",
                        "ops@example.org", "--mail", "console", "--db-host", answers.db_host, "--db-port",
                        str(answers.db_port), "--db-user", answers.db_user, "--db-name", answers.db_name)
    assert result.returncode != 0
    assert f"CREATE DATABASE `{answers.db_name}` CHARACTER SET utf8mb4" in result.stderr
    assert not env_file.exists()


@pytest.mark.mariadb
def test_check_database_rejects_a_database_that_is_not_utf8mb4(wizard_database):
    answers, server = wizard_database
    server.cursor().execute(f"CREATE DATABASE `{answers.db_name}` CHARACTER SET latin1")
    with pytest.raises(wizard.SetupError, match=r"uses latin1.*ALTER DATABASE"):
        wizard.check_database(answers, may_create=lambda: pytest.fail("must not offer to create"))


def test_check_database_explains_an_unreachable_server():
    answers = wizard.Answers(db_host="127.0.0.1", db_port=free_port(), db_user="epnhook")
    with pytest.raises(wizard.SetupError, match=r"Cannot connect to MariaDB at 127\.0\.0\.1:\d+ as epnhook"):
        wizard.check_database(answers, may_create=lambda: True)


def test_docker_mode_writes_the_compose_database_password(env_file):
    result = run_manage(env_file, "setup", "--no-input", "--docker", "--domain", "webhook.example.com",
                        "--admins", "ops@example.com", "--mail", "console")
    assert result.returncode == 0, result.stderr
    values = read_env(env_file)
    password = values["MARIADB_PASSWORD"]
    assert len(password) >= 32
    assert values["DATABASE_URL"] == f"mysql://epnhook:{password}@db:3306/epnhook"
    # root's password is nobody's: only its hash is written, and it is not the user's.
    assert re.fullmatch(r"\*[0-9A-F]{40}", values["MARIADB_ROOT_PASSWORD_HASH"])
    assert values["MARIADB_ROOT_PASSWORD_HASH"] != wizard.mariadb_password_hash(password)
    assert "docker compose -f docker/compose.yaml --env-file .env up -d" in result.stdout
    # The MariaDB container keeps the password it was initialised with: a re-run must keep it too.
    again = run_manage(env_file, "setup", "--no-input", "--docker", "--force")
    assert again.returncode == 0, again.stderr
    assert read_env(env_file) == values


@pytest.mark.parametrize("provider", ["mailgun", "postmark"])
def test_a_rerun_keeps_the_anymail_key(env_file, provider):
    """The key is read back from the setting settings.py stores it in, so --force --no-input needs nothing new."""
    first = run_manage(env_file, "setup", "--no-input", "--docker", "--domain", "webhook.example.com", "--admins",
                       "ops@example.com", EMAIL_URL=f"anymail://{provider}", ANYMAIL_API_KEY="key-123-anymail")
    assert first.returncode == 0, first.stderr
    values = read_env(env_file)
    assert (values["EMAIL_URL"], values["ANYMAIL_API_KEY"]) == (f"anymail://{provider}", "key-123-anymail")
    again = run_manage(env_file, "setup", "--no-input", "--docker", "--force")
    assert again.returncode == 0, again.stderr
    assert read_env(env_file) == values


@pytest.mark.mariadb
@pytest.mark.django_db
def test_the_root_password_hash_is_the_one_mariadb_computes():
    with connection.cursor() as cursor:
        cursor.execute("SELECT PASSWORD(%s)", ["pässword with 'quotes' and 32+ characters"])
        assert wizard.mariadb_password_hash("pässword with 'quotes' and 32+ characters") == cursor.fetchone()[0]


def test_env_values_survive_the_round_trip_through_django_environ(tmp_path):
    answers = wizard.Answers(domain="webhook.example.com", db_user="ep nhook", db_password="p@ss:w/rd%#?",
                             admins=["Ops Team <ops@example.com>"], smtp_host="smtp.example.com",
                             smtp_user="me@example.com", smtp_password="s#cr:t/@%", smtp_port=465,
                             smtp_security="ssl")
    answers.generate_missing_secrets()
    path = tmp_path / ".env"
    wizard.write_env(path, wizard.render_env(answers, docker=False, kept_lines=["LOG_FORMAT=json"]), force=False)
    values = read_env(path)
    db = environ.Env.db_url_config(values["DATABASE_URL"])
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == ("ep nhook", "p@ss:w/rd%#?", "127.0.0.1", 3306)
    mail = environ.Env.email_url_config(values["EMAIL_URL"])
    assert (mail["EMAIL_HOST_USER"], mail["EMAIL_HOST_PASSWORD"], mail["EMAIL_USE_SSL"]) == (
        "me@example.com", "s#cr:t/@%", True)
    assert values["LOG_FORMAT"] == "json"


def test_a_value_with_a_single_quote_is_refused():
    answers = wizard.Answers(domain="webhook.example.com", admins=["O'Brien <ob@example.com>"], mail="console")
    answers.generate_missing_secrets()
    with pytest.raises(wizard.SetupError, match="ADMINS may not contain a single quote"):
        wizard.render_env(answers, docker=False, kept_lines=[])


def test_write_env_refuses_then_replaces_with_a_backup(tmp_path):
    path = tmp_path / ".env"
    assert wizard.write_env(path, "A='1'\n", force=False) is None
    with pytest.raises(wizard.SetupError, match="refusing to overwrite"):
        wizard.write_env(path, "A='2'\n", force=False)
    backup = wizard.write_env(path, "A='2'\n", force=True)
    assert path.read_text() == "A='2'\n" and backup.read_text() == "A='1'\n"
    assert {stat.S_IMODE(p.stat().st_mode) for p in (path, backup)} == {0o600}


def test_the_backup_is_created_private(tmp_path, monkeypatch):
    """Born 0600, not copied and then narrowed: with a umask that hides nothing and every chmod disabled,
    the backup of the secrets is still readable by its owner only."""
    path = tmp_path / ".env"
    wizard.write_env(path, "SECRET_KEY='1'\n", force=False)
    for name in ("chmod", "fchmod", "lchmod"):
        monkeypatch.setattr(os, name, lambda *args, **kwargs: pytest.fail("the mode is set after creation"),
                            raising=False)
    umask = os.umask(0)
    try:
        backup = wizard.write_env(path, "SECRET_KEY='2'\n", force=True)
    finally:
        os.umask(umask)
    assert backup.read_text() == "SECRET_KEY='1'\n"
    assert {stat.S_IMODE(p.stat().st_mode) for p in (path, backup)} == {0o600}


def test_current_settings_become_the_defaults(settings):
    settings.DOMAIN = ""
    settings.ALLOWED_HOSTS = ["localhost", "hooks.example.net"]
    settings.EMAIL_URL = "smtp+tls://u%40x:p%3Aw@mail.example.net:2525"
    settings.WEBHOOK_TOKENS = [*settings.WEBHOOK_TOKENS, ("admitad", "a" * 43)]
    answers = wizard.Answers.from_settings(settings)
    assert answers.domain == "hooks.example.net"
    assert (answers.smtp_host, answers.smtp_port, answers.smtp_security) == ("mail.example.net", 2525, "tls")
    assert (answers.smtp_user, answers.smtp_password) == ("u@x", "p:w")
    assert answers.admins == ["Ops <ops@example.com>"]
    # The test tokens are long enough to keep; the test SECRET_KEY is too short, so a new one is made.
    assert answers.tokens == settings.WEBHOOK_TOKENS and len(answers.tokens) == 3  # every network's
    assert answers.secret_key == ""


def test_unmanaged_lines_keep_other_settings_and_drop_managed_ones():
    text = ("# comment\nSECRET_KEY=old\nexport INGEST_DEADLINE=4\nDEBUG=True\nWEBHOOK_TOKENS=admitad:tok\n"
            "LOG_FORMAT=json\n")
    assert wizard.unmanaged_lines(text) == ["export INGEST_DEADLINE=4", "LOG_FORMAT=json"]


EPN_TOKEN, EPN_ROTATED, ADMITAD_TOKEN = "e" * 43, "r" * 43, "a" * 43


def test_a_rerun_keeps_every_token_of_every_network(tmp_path):
    answers = wizard.Answers(domain="webhook.example.com", mail="console", tokens=[
        ("epn_bz", EPN_TOKEN), ("admitad", ADMITAD_TOKEN), ("epn_bz", EPN_ROTATED)])
    answers.generate_missing_secrets()
    path = tmp_path / ".env"
    wizard.write_env(path, wizard.render_env(answers, docker=False, kept_lines=[]), force=False)
    values = read_env(path)
    assert values["WEBHOOK_SECRET_TOKEN"] == f"{EPN_TOKEN},{EPN_ROTATED}"
    assert values["WEBHOOK_TOKENS"] == f"admitad:{ADMITAD_TOKEN}"
    # Read back by the settings, the file configures the same tokens.
    loaded = load_settings("WEBHOOK_TOKENS", ENV_FILE=str(path))
    assert loaded.returncode == 0, loaded.stderr
    assert sorted(ast.literal_eval(loaded.stdout)) == sorted(answers.tokens)


def test_a_fresh_install_gets_a_token_for_epn_bz_alone():
    answers = wizard.Answers(domain="webhook.example.com", mail="console")
    answers.generate_missing_secrets()
    ((partner, token),) = answers.tokens
    assert partner == "epn_bz" and len(token) == 43
    text = wizard.render_env(answers, docker=False, kept_lines=[])
    assert f"WEBHOOK_SECRET_TOKEN='{token}'" in text and "WEBHOOK_TOKENS" not in text


def test_each_networks_url_to_paste():
    answers = wizard.Answers(domain="webhook.example.com", tokens=[
        ("admitad", ADMITAD_TOKEN), ("epn_bz", EPN_TOKEN), ("epn_bz", EPN_ROTATED), ("retired", "x" * 43)])
    urls = answers.postback_urls()
    assert [name for name, _url in urls] == ["Admitad", "EPN.bz"]  # as configured; an unknown one left out
    assert urls[1][1] == f"https://webhook.example.com/webhook/{EPN_TOKEN}"  # ePN appends its own parameters
    assert urls[0][1].startswith(f"https://webhook.example.com/webhook/{ADMITAD_TOKEN}?admitad_id=[[[admitad_id]]]&")


class ScriptedPrompter(wizard.Prompter):
    """A terminal whose operator types `typed`, one answer per question; the questions are kept."""

    def __init__(self, *typed: str):
        super().__init__(lambda text: None)
        self.typed, self.asked = list(typed), []

    def ask(self, question: str, default: str = "", *, secret: bool = False) -> str:
        self.asked.append((question, default, secret))
        return self.typed.pop(0) or default


def test_api_credentials_are_optional_kept_on_a_rerun_and_removable(settings):
    settings.RECONCILE_APIS = {"admitad": {"client_id": "adm-id", "client_secret": "adm-secret", "api_url": "x"}}
    answers = wizard.Answers.from_settings(settings)
    assert answers.api_credentials == {"admitad": ("adm-id", "adm-secret")}
    prompter = ScriptedPrompter("epn-id", "epn-secret", "", "")  # EPN.bz given; Admitad's kept as they are
    wizard.ask_api_credentials(answers, prompter)
    assert answers.api_credentials == {"admitad": ("adm-id", "adm-secret"), "epn_bz": ("epn-id", "epn-secret")}
    assert [(question, secret) for question, _default, secret in prompter.asked] == [
        ("EPN.bz API client id (empty: none)", False), ("EPN.bz API client secret", True),
        ("Admitad API client id", False), ("Admitad API client secret", True)]
    text = wizard.render_env(answers, docker=False, kept_lines=[])
    for line in ("EPN_API_CLIENT_ID='epn-id'", "EPN_API_CLIENT_SECRET='epn-secret'", "ADMITAD_CLIENT_ID='adm-id'",
                 "ADMITAD_CLIENT_SECRET='adm-secret'"):
        assert line in text
    wizard.ask_api_credentials(answers, ScriptedPrompter("-", "-"))  # "-" removes a network's
    assert answers.api_credentials == {}
    assert "CLIENT" not in wizard.render_env(answers, docker=False, kept_lines=[])


def test_outbound_events_are_optional_kept_on_a_rerun_and_removable(settings):
    settings.OUTBOUND_URL, settings.OUTBOUND_SECRET = "https://site.example.com/hook", "whsec_" + "A" * 32
    answers = wizard.Answers.from_settings(settings)
    wizard.ask_outbound(answers, ScriptedPrompter(""))  # kept as it is, with its secret: the site has it
    answers.generate_missing_secrets()
    assert (answers.outbound_url, answers.outbound_secret) == (settings.OUTBOUND_URL, settings.OUTBOUND_SECRET)
    wizard.ask_outbound(answers, ScriptedPrompter("-"))
    assert "OUTBOUND" not in wizard.render_env(answers, docker=False, kept_lines=[])
    answers = wizard.Answers(domain="webhook.example.com", admins=["ops@example.com"], mail="console",
                             outbound_url="http://site.example.com/hook")
    with pytest.raises(wizard.SetupError, match="is not an https:// URL"):
        answers.validate()


def test_non_interactive_setup_makes_a_secret_for_the_outbound_url(env_file):
    result = run_manage(env_file, "setup", "--no-input", "--docker", "--domain", "webhook.example.com", "--admins",
                        "ops@example.com", "--mail", "console", "--outbound-url", "https://site.example.com/hook")
    assert result.returncode == 0, result.stderr
    values = read_env(env_file)
    assert values["OUTBOUND_URL"] == "https://site.example.com/hook"
    assert values["OUTBOUND_SECRET"].startswith("whsec_") and values["OUTBOUND_SECRET"] in result.stdout
    again = run_manage(env_file, "setup", "--no-input", "--docker", "--force")
    assert again.returncode == 0, again.stderr
    assert read_env(env_file)["OUTBOUND_SECRET"] == values["OUTBOUND_SECRET"]


def test_an_api_client_id_without_its_secret_is_refused():
    answers = wizard.Answers(domain="webhook.example.com", admins=["ops@example.com"], mail="console",
                             api_credentials={"epn_bz": ("epn-id", "")})
    with pytest.raises(wizard.SetupError, match="EPN.bz's API needs both its client id and its client secret"):
        answers.validate()


def test_non_interactive_setup_takes_the_api_credentials_from_the_environment(env_file):
    result = run_manage(env_file, "setup", "--no-input", "--docker", "--domain", "webhook.example.com", "--admins",
                        "ops@example.com", "--mail", "console", ADMITAD_CLIENT_ID="adm-id",
                        ADMITAD_CLIENT_SECRET="adm-secret")
    values = read_env(env_file)
    assert (values["ADMITAD_CLIENT_ID"], values["ADMITAD_CLIENT_SECRET"]) == ("adm-id", "adm-secret"), result.stderr
    assert "adm-secret" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def private_server(tmp_path_factory):
    """A private MariaDB with two users: one without any rights, one that may create only epnhook_scoped."""
    server = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    server.sql("CREATE USER 'limited'@'%' IDENTIFIED BY 'limited-pw'; "
               "CREATE USER 'scoped'@'%' IDENTIFIED BY 'scoped-pw'; "
               "GRANT ALL ON `epnhook\\_scoped`.* TO 'scoped'@'%';")
    yield server
    server.stop()


@pytest.mark.mariadb
@pytest.mark.private_mariadb
def test_a_user_without_rights_gets_the_sql_for_the_dba_then_can_retry(env_file, private_server):
    child = spawn_setup(env_file, "--skip-migrate")
    answer(child, r"Domain: ", "webhook.example.com")
    answer(child, r"Host \[127.0.0.1\]: ", "")
    answer(child, r"Port \[3306\]: ", str(private_server.port))
    answer(child, r"Database \[epnhook\]: ", "epnhook_scoped")
    answer(child, r"User \[epnhook\]: ", "limited")
    answer(child, r"Password: ", "limited-pw")
    answer(child, r"Alert address\(es\), comma-separated: ", "ops@example.com")
    answer(child, r"Send mail through .*: ", "")
    answer(child, r"SMTP host: ", "smtp.example.com")
    answer(child, r"Encryption .*: ", "")
    answer(child, r"SMTP port \[587\]: ", "")
    answer(child, r"SMTP user \(empty: none\): ", "")
    answer(child, r"Send alerts from .*: ", "")
    answer(child, r"EPN.bz API client id \(empty: none\): ", "")
    answer(child, r"Admitad API client id \(empty: none\): ", "")
    answer(child, r"The site's endpoint \(empty: none\): ", "")
    # No offer to create: the user may not. The operator is told what to ask for, and may try again.
    child.expect(r"limited may not create it\. Ask your database administrator to run: "
                 r"CREATE DATABASE `epnhook_scoped` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
                 r"GRANT ALL ON `epnhook_scoped`\.\* TO 'limited'@'%';")
    answer(child, r"Change the database answers and try again\? \[Y/n\]: ", "y")
    answer(child, r"Host \[127.0.0.1\]: ", "")
    answer(child, rf"Port \[{private_server.port}\]: ", "")
    answer(child, r"Database \[epnhook_scoped\]: ", "")
    answer(child, r"User \[limited\]: ", "scoped")
    answer(child, r"Password \[keep current\]: ", "scoped-pw")
    answer(child, r"does not exist\. Create it \(utf8mb4\)\? \[Y/n\]: ", "y")
    child.expect(r"Created database epnhook_scoped \(utf8mb4\)\.")
    answer(child, r"Send a test email .*: ", "n")
    child.expect(r"https://webhook\.example\.com/webhook/")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert read_env(env_file)["DATABASE_URL"] == f"mysql://scoped:scoped-pw@127.0.0.1:{private_server.port}/epnhook_scoped"
    assert "epnhook_scoped" in private_server.sql("SHOW DATABASES")


def test_an_unknown_anymail_provider_is_refused():
    answers = wizard.Answers(domain="webhook.example.com", admins=["ops@example.com"], mail="anymail",
                             anymail_provider="mailgnu", anymail_key="key")
    with pytest.raises(wizard.SetupError, match="provider it knows"):
        answers.validate()
    answers.anymail_provider = "mailgun"
    answers.validate()
