"""systemd/: the units for an install without Docker, checked by systemd and then run as they say.

systemd does not run here, so `systemd-analyze verify` checks the units (syntax, and that the commands
exist at the instance path), and the units' own lines are read back to run their commands: after
`manage.py setup --no-input` in a copy of the checkout at another path, gunicorn starts with exactly the
command line, working directory and environment of epnhook-web@.service, and the timers' services run
their commands the same way. Not tested here: the sandbox (User=, ProtectSystem=, ...), which only
systemd applies.
"""

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import MySQLdb
import pytest
from django.conf import settings
from django.db import connection

from devtools.mariadb import free_port, stop_process
from orders import setup_wizard as wizard
from tests.factories import load_settings
from tests.live_service import SmtpSink
from tests.test_docker import readme_section

BASE_DIR = Path(settings.BASE_DIR)
UNITS = BASE_DIR / "systemd"
DOMAIN = "webhook.example.com"
# What systemd gives every service before Environment= and EnvironmentFile= (HOME: User='s home).
SYSTEMD_ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def escape_path(path: Path) -> str:
    return subprocess.run(["systemd-escape", "--path", str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def read_unit(name: str) -> dict[str, dict[str, list[str]]]:
    """The unit's sections and settings; a setting given twice keeps both values in order (ExecStartPre=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    for line in (UNITS / name).read_text().splitlines():
        assert not line.endswith("\\"), "continued lines are not read here"
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return sections


def expand(value: str, checkout: Path) -> str:
    """systemd's specifiers, for the instance `checkout`: %f the path, %i its escaped name."""
    expanded = re.sub(r"%([fi%])", lambda m: {"f": str(checkout), "i": escape_path(checkout), "%": "%"}[m[1]], value)
    assert "%" not in expanded, f"a specifier this test does not know: {value}"
    return expanded


def read_environment_file(path: Path) -> dict[str, str]:
    """EnvironmentFile=, for the forms whose meaning systemd and django-environ agree on: KEY='literal' and
    KEY=plain (no quote, backslash or $); any other line fails the test rather than being guessed at."""
    values = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=(?:'([^']*)'|([^'\"\\$\s]*))", line)
        assert match, f"systemd may read this .env line differently: {line.split('=')[0]}=..."
        values[match[1]] = match[2] if match[2] is not None else match[3]
    return values


class Service:
    """One service unit's commands and environment for the instance `checkout`, as systemd runs them."""

    def __init__(self, name: str, checkout: Path, home: Path):
        self.service = read_unit(name)["Service"]
        self.checkout = checkout
        self.cwd = Path(expand(self.service["WorkingDirectory"][0], checkout))
        self.environment = {**SYSTEMD_ENVIRONMENT, "HOME": str(home)}
        for assignments in self.service.get("Environment", []):
            self.environment.update(item.split("=", 1) for item in shlex.split(expand(assignments, checkout)))
        for path in self.service.get("EnvironmentFile", []):  # these win over Environment=
            self.environment.update(read_environment_file(Path(expand(path, checkout))))

    def command(self, key: str) -> list[list[str]]:
        commands = []
        for line in self.service.get(key, []):
            assert "$" not in line and not line.startswith(("-", "+", "!", "@", ":")), f"not run here: {line}"
            argv = shlex.split(expand(line, self.checkout))
            assert Path(argv[0]).is_absolute() and os.access(argv[0], os.X_OK), argv[0]
            commands.append(argv)
        return commands

    def run(self, argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.cwd, env=self.environment, capture_output=True, text=True, timeout=300)


def unit_files() -> list[str]:
    return sorted(path.name for path in UNITS.iterdir())


def test_systemd_analyze_verifies_every_unit_for_an_instance(tmp_path):
    """The instance is this checkout: verify resolves %f and checks that each command exists there."""
    instance = escape_path(BASE_DIR)
    paths = []
    for name in unit_files():
        template, _, suffix = name.partition("@")
        assert suffix.startswith("."), f"{name} is not a template (<name>@.<type>)"
        paths.append(tmp_path / f"{template}@{instance}{suffix}")
        paths[-1].symlink_to(UNITS / name)
    result = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_the_target_starts_every_unit_and_each_timer_has_its_service():
    target = read_unit("epnhook@.target")
    wanted = set(target["Unit"]["Wants"][0].split())
    units = {name.replace("@.", "@%i.") for name in unit_files()} - {"epnhook@%i.target"}
    timed = {name.replace(".timer", ".service") for name in units if name.endswith(".timer")}
    # The target wants the web service and the timers; the services a timer starts are not started directly.
    assert wanted == units - timed and timed <= units
    assert target["Install"]["WantedBy"] == ["multi-user.target"]
    for name in unit_files():
        if name != "epnhook@.target":
            assert read_unit(name)["Unit"]["PartOf"] == ["epnhook@%i.target"], name


def test_every_service_runs_as_the_same_unprivileged_user_in_the_same_sandbox():
    services = [read_unit(name)["Service"] for name in unit_files() if name.endswith(".service")]
    shared = ("User", "Group", "WorkingDirectory", "EnvironmentFile", "UMask", "NoNewPrivileges", "ProtectSystem",
              "ReadWritePaths", "PrivateTmp", "CapabilityBoundingSet")
    for service in services:
        assert {key: service[key] for key in shared} == {key: services[0][key] for key in shared}
    first = services[0]
    assert first["User"] == ["epnhook"] and first["NoNewPrivileges"] == ["yes"] and first["ProtectSystem"] == ["strict"]
    # What the service writes: SPOOL_DIR and ALERT_STATE_DIR (by default under var/), and collectstatic's.
    assert first["ReadWritePaths"] == ["%f/var %f/staticfiles"]
    defaults = load_settings("SPOOL_DIR", "ALERT_STATE_DIR", "STATIC_ROOT")
    assert [Path(line).relative_to(BASE_DIR).parts[0] for line in defaults.stdout.split()] == [
        "var", "var", "staticfiles"], defaults.stderr


def test_the_readme_gives_the_steps_setup_prints_and_the_units_the_target_starts():
    section = readme_section("Serve with systemd")
    for line in wizard.next_steps(Path("/opt/epnhook"), DOMAIN, docker=False).splitlines()[1:3]:
        assert line.strip() in section
    wanted = read_unit("epnhook@.target")["Unit"]["Wants"][0].replace("%i", "opt-epnhook").split()
    assert set(re.findall(r"`(epnhook-[a-z-]+@opt-epnhook\.(?:service|timer))`", section)) == set(wanted)
    # The proxy forwards to where the unit binds gunicorn.
    environment = read_unit("epnhook-web@.service")["Service"]["Environment"][0]
    bind = dict(item.split("=", 1) for item in shlex.split(environment))["GUNICORN_BIND"]
    assert f"{DOMAIN} {{\n\treverse_proxy {bind}\n}}" in section


@pytest.fixture
def checkout(tmp_path):
    """A copy of this checkout at another path (with dashes, which systemd-escape escapes), its .venv the
    one of this checkout: what `git clone` and `make venv` leave."""
    copy = tmp_path / "srv" / "epnhook-prod"
    shutil.copytree(BASE_DIR, copy, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "staticfiles", "db.sqlite3", ".env", ".env.*", "__pycache__", "test-artifacts",
        ".pytest_cache", ".ruff_cache", ".hypothesis"))
    (copy / ".venv").symlink_to((BASE_DIR / ".venv").resolve())
    return copy


@pytest.fixture
def database():
    """A database of its own on the test run's MariaDB, which setup creates; dropped afterwards."""
    db = connection.settings_dict
    name = f"{db['NAME']}_systemd"
    server = MySQLdb.connect(host=db["HOST"] or "127.0.0.1", port=int(db["PORT"] or 3306), user=db["USER"],
                             password=db["PASSWORD"])
    drop = f"DROP DATABASE IF EXISTS `{name}`"
    server.cursor().execute(drop)
    yield f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{name}", server, name
    server.cursor().execute(drop)
    server.close()


def request(port: int, path: str, **headers) -> tuple[int, str, bytes]:
    """As the reverse proxy on this host sends it: the public host name, https, the sender's address."""
    headers = {"Host": DOMAIN, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", **headers}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers),
                                    timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


@pytest.mark.mariadb
def test_setup_then_the_units_serve_the_admin_and_postbacks(checkout, database, tmp_path):
    database_url, server, name = database
    home = tmp_path / "home"
    home.mkdir()
    with SmtpSink() as smtp:
        setup = subprocess.run(
            [str(checkout / ".venv" / "bin" / "python"), "manage.py", "setup", "--no-input", "--domain", DOMAIN,
             "--admins", "ops@example.com", "--mail", "smtp", "--smtp-host", "127.0.0.1", "--smtp-port",
             str(smtp.port), "--smtp-security", "none", "--create-database"],
            cwd=checkout, capture_output=True, text=True, timeout=300,
            env={"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", "DATABASE_URL": database_url})
        assert setup.returncode == 0, setup.stdout + setup.stderr
        # Ready to serve: the hashed static files the admin's pages link to are collected.
        assert (checkout / "staticfiles" / "staticfiles.json").is_file()
        # The next step it prints names this checkout's units.
        assert f"cp {checkout}/systemd/epnhook* /etc/systemd/system/" in setup.stdout
        enable = re.search(r'systemctl enable --now "epnhook@\$\(systemd-escape --path (\S+)\)\.target"', setup.stdout)
        assert enable and Path(enable[1]) == checkout
        # An operator's knobs, in .env as the unit reads it: a free port, one worker.
        port = free_port()
        with (checkout / ".env").open("a") as env_file:
            env_file.write(f"GUNICORN_BIND=127.0.0.1:{port}\nWEB_CONCURRENCY=1\n")

        web = Service("epnhook-web@.service", checkout, home)
        # What the sandbox lets the service write exists after setup, or the unit could not start.
        for path in expand(web.service["ReadWritePaths"][0], checkout).split():
            assert Path(path).is_dir(), path
        for argv in web.command("ExecStartPre"):
            result = web.run(argv)
            assert result.returncode == 0, result.stdout + result.stderr
        (start,) = web.command("ExecStart")
        # Type=notify: gunicorn says READY=1 on the socket systemd names, once it accepts connections.
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(60)
        log = tmp_path / "gunicorn.log"
        with log.open("wb") as output:
            gunicorn = subprocess.Popen(start, cwd=web.cwd, stdout=output, stderr=subprocess.STDOUT,
                                        env={**web.environment, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        try:
            assert b"READY=1" in notify.recv(4096), log.read_text()
            status, _, page = request(port, f"/{settings.ADMIN_URL}login/")
            assert status == 200, page[:2000]
            stylesheet = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
            assert stylesheet, page[:2000]
            status, content_type, _ = request(port, stylesheet[1].decode())
            assert (status, content_type.split(";")[0]) == (200, "text/css")

            token = read_environment_file(checkout / ".env")["WEBHOOK_SECRET_TOKEN"]
            status, _, body = request(port, f"/webhook/{token}?click_id=1&order_number=O-1&uniq_id=EPN-SYSTEMD-1"
                                            "&order_status=waiting&revenue=100&commission_fee=5")
            assert status == 200 and b'"created"' in body, body
            cursor = server.cursor()
            cursor.execute(f"SELECT remote_addr FROM `{name}`.orders_delivery")
            assert cursor.fetchall() == (("203.0.113.7",),)  # TRUSTED_PROXIES: the proxy on this host

            # The timers' services, as they run: a healthy install passes quietly, and pruning works.
            for unit in ("epnhook-check-health@.service", "epnhook-prune-deliveries@.service",
                         "epnhook-reconcile@.service"):  # no API credentials: nothing to reconcile, exit 0
                service = Service(unit, checkout, home)
                (argv,) = service.command("ExecStart")
                result = service.run(argv)
                assert result.returncode == 0, f"{unit}: {result.stdout}{result.stderr}"
            assert smtp.messages == []
        finally:
            notify.close()
            gunicorn.send_signal(signal.SIGTERM)  # systemctl stop
            stop_process(gunicorn, 30)
        assert gunicorn.returncode == 0, log.read_text()
