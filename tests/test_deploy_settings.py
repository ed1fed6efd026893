"""Production settings and server: check --deploy, whitenoise, and gunicorn started for real.

gunicorn is started the way the docker image starts it (docker/entrypoint.sh serve: migrate, then
gunicorn with gunicorn.conf.py), on a free port and a SQLite file, behind no proxy: the requests carry
the headers Traefik adds.
"""

import json
import os
import runpy
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from devtools.mariadb import free_port, stop_process
from orders import setup_wizard as wizard

BASE_DIR = Path(settings.BASE_DIR)
DOMAIN = "webhook.example.com"
TOKEN = "deploy-test-token-0123456789abcdefghijklmnopqrstuvwxyz"


def production_env_file(tmp_path: Path) -> Path:
    """A .env as the wizard writes it for a MariaDB install (never connected to here)."""
    answers = wizard.Answers(domain=DOMAIN, db_password="pw", admins=["ops@example.com"], smtp_host="smtp.example.com",
                             smtp_user="u", smtp_password="p")
    answers.generate_missing_secrets()
    path = tmp_path / ".env"
    wizard.write_env(path, wizard.render_env(answers, docker=False, kept_lines=[]), force=False)
    return path


def manage(*args: str, **environment) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **environment}, timeout=60)


def test_check_deploy_is_clean_with_the_production_env(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", ENV_FILE=str(production_env_file(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_does_warn_when_a_protection_is_off(tmp_path):
    """The clean run above means something: switching HSTS off is reported."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", ENV_FILE=str(production_env_file(tmp_path)),
                    SECURE_HSTS_SECONDS="0")
    assert result.returncode != 0
    assert "security.W004" in result.stderr


def test_without_secret_key_only_setup_can_start(tmp_path):
    missing = tmp_path / "missing.env"
    check = manage("check", ENV_FILE=str(missing))
    assert check.returncode != 0 and "SECRET_KEY must be set" in check.stderr
    setup = manage("setup", "--help", ENV_FILE=str(missing))
    assert setup.returncode == 0 and "--no-input" in setup.stdout


def test_settings_read_the_environment_not_the_command_line(tmp_path):
    """Only manage.py looks at its arguments: a process that merely looks like `manage.py setup` gets no key."""
    code = "import sys; sys.argv = ['manage.py', 'setup']; import epnhook.settings"
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"], "ENV_FILE": str(tmp_path / "missing.env")})
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_domain_is_the_default_for_allowed_hosts_and_csrf_origins(tmp_path):
    script = ("import django; from django.conf import settings; django.setup(); "
              "print(settings.ALLOWED_HOSTS, settings.CSRF_TRUSTED_ORIGINS, settings.SECURE_PROXY_SSL_HEADER)")
    result = subprocess.run([sys.executable, "-c", script], cwd=BASE_DIR, capture_output=True, text=True, env={
        "PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "epnhook.settings",
        "ENV_FILE": str(production_env_file(tmp_path))})
    assert result.stdout.strip() == (
        f"['{DOMAIN}'] ['https://{DOMAIN}'] ('HTTP_X_FORWARDED_PROTO', 'https')"), result.stderr


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory):
    root = tmp_path_factory.mktemp("static")
    from django.test.utils import override_settings

    # Production's storage (tests.settings swaps it for plain files so pages render uncollected).
    production_storage = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
    with override_settings(STATIC_ROOT=root, STORAGES={**settings.STORAGES, "staticfiles": production_storage}):
        call_command("collectstatic", "--noinput", verbosity=0)
        yield root


def test_whitenoise_serves_admin_static_files_hashed_and_compressed(collected_static, settings):
    from django.contrib.staticfiles.storage import staticfiles_storage

    assert settings.STATIC_ROOT == collected_static
    hashed = staticfiles_storage.url("admin/css/base.css")
    assert hashed.startswith("/static/admin/css/base.") and hashed != "/static/admin/css/base.css"
    response = Client().get(hashed, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "immutable" in response["Cache-Control"]  # a hashed name never changes content
    body = b"".join(response.streaming_content)
    assert body[:2] == b"\x1f\x8b" and len(body) < (collected_static / "admin/css/base.css").stat().st_size


def test_gunicorn_conf_matches_the_ingest_bound(monkeypatch):
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    conf = runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))
    assert conf["workers"] == os.cpu_count() + 1
    # A postback answers within INGEST_DEADLINE; the worker timeout must not cut it short.
    assert conf["timeout"] > settings.INGEST_DEADLINE + settings.DATABASE_CONNECT_TIMEOUT
    assert conf["forwarded_allow_ips"] == "*"
    for atom in ("%(r)s", "%(q)s", "%(f)s", "{raw_uri}"):
        assert atom not in conf["access_log_format"]


class Gunicorn:
    """docker/entrypoint.sh serve, outside docker: migrate, then gunicorn with gunicorn.conf.py."""

    def __init__(self, var: Path, log_format: str):
        self.port = free_port()
        self.log = var / f"gunicorn-{log_format}.log"  # stdout: the postback and access lines go here
        self.errors = var / f"gunicorn-{log_format}.err"
        self.environment = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "LANG": "C.UTF-8", "ENV_FILE": "",
            "SECRET_KEY": "x" * 60, "DOMAIN": DOMAIN, "WEBHOOK_SECRET_TOKEN": TOKEN, "ADMINS": "ops@example.com",
            "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}", "SPOOL_DIR": str(var / "spool"),
            "ALERT_STATE_DIR": str(var / "alerts"), "LOG_FORMAT": log_format, "LANGUAGE_CODE": "en",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2",
            "FORWARDED_ALLOW_IPS": "127.0.0.1",
            # The image has collected static files; this checkout need not, and whitenoise would warn.
            "PYTHONWARNINGS": "ignore:No directory at",
        }

    def __enter__(self):
        with open(self.log, "wb") as log, open(self.errors, "wb") as errors:
            self.process = subprocess.Popen(["docker/entrypoint.sh", "serve"], cwd=BASE_DIR, env=self.environment,
                                            stdout=log, stderr=errors)
        deadline = time.monotonic() + 60
        while self.healthcheck().returncode != 0:
            assert self.process.poll() is None, self.errors.read_text()
            assert time.monotonic() < deadline, self.errors.read_text()
            time.sleep(0.3)
        return self

    def healthcheck(self) -> subprocess.CompletedProcess:
        """The image's HEALTHCHECK command, as docker runs it."""
        return subprocess.run([sys.executable, "docker/healthcheck.py"], cwd=BASE_DIR, env=self.environment,
                              capture_output=True, text=True)

    def __exit__(self, *exc):
        stop_process(self.process, 30)

    def request(self, path: str, *, data: bytes | None = None, headers=None) -> int:
        headers = {"Host": DOMAIN, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", **(headers or {})}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code


def send_postbacks(server: Gunicorn) -> list[int]:
    query = "click_id=1&order_number=O-1&uniq_id=EPN-DEPLOY-1&order_status=waiting&revenue=100&commission_fee=5"
    url = f"/webhook/{TOKEN}"
    return [
        server.request(f"{url}?{query}"),
        server.request(f"{url}/?{query}", headers={"Referer": f"https://{DOMAIN}{url}"}),
        server.request(url, data=query.replace("waiting", "completed").encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded"}),
        server.request(f"{url}?click_id=1"),
        server.request(f"/webhook/{TOKEN[:-1]}?{query}"),
    ]


def test_gunicorn_serves_postbacks_and_never_logs_the_token(tmp_path):
    with Gunicorn(tmp_path, "text") as server:
        statuses = send_postbacks(server)
        redirect = server.request("/health", headers={"X-Forwarded-Proto": "http"})
    assert statuses == [200, 200, 200, 400, 404]
    assert redirect == 200  # /health is exempt from the HTTPS redirect (the container probe is plain HTTP)
    log = server.log.read_text()
    assert TOKEN not in log + server.errors.read_text() and TOKEN[:20] not in log + server.errors.read_text()
    # The application logs webhook requests; gunicorn's access log leaves them out (and logs the rest).
    assert '"GET /webhook/' not in log and '"POST /webhook/' not in log, log
    assert '"GET /health" 200' in log
    assert "Not Found: /webhook/<redacted>" in log
    # One line per postback, with the fields an operator greps for.
    assert "postback created partner=epn_bz uniq_id=EPN-DEPLOY-1 status=waiting ms=" in log
    assert "postback duplicate partner=epn_bz uniq_id=EPN-DEPLOY-1 status=waiting ms=" in log
    assert "postback invalid partner=epn_bz uniq_id=- status=- ms=" in log


def test_log_format_json_writes_one_json_object_per_postback(tmp_path):
    with Gunicorn(tmp_path, "json") as server:
        send_postbacks(server)
    log = server.log.read_text()
    assert TOKEN not in log + server.errors.read_text()
    # After migrate's own output, every line is a JSON object: gunicorn's lines and the application's.
    served = log[log.index("{"):].splitlines()
    records = [json.loads(line) for line in served]
    access = [record["message"] for record in records if record["logger"] == "gunicorn.access"]
    assert not any("/webhook/" in line for line in access), access
    postbacks = [record for record in records if record["logger"] == "epnhook.webhook"]
    assert [(r["outcome"], r["partner"], r["uniq_id"], r["status"]) for r in postbacks] == [
        ("created", "epn_bz", "EPN-DEPLOY-1", "waiting"),
        ("duplicate", "epn_bz", "EPN-DEPLOY-1", "waiting"),
        ("created", "epn_bz", "EPN-DEPLOY-1", "completed"),
        ("invalid", "epn_bz", "", ""),
    ]
    assert all(isinstance(record["ms"], float) for record in postbacks)
