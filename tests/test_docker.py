"""docker/: no Docker engine runs here, so the files are checked instead of run.

- docker/compose.yaml validates against the compose-spec JSON schema (the copy check-jsonschema ships),
  and holds what production needs;
- the Dockerfile's commands and the entry point's are the ones the README documents;
- the entry point's pass-through runs for real (its `serve` mode is run by tests/test_deploy_settings.py).
"""

import ipaddress
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from ruamel.yaml import YAML

from orders import setup_wizard as wizard

BASE_DIR = Path(settings.BASE_DIR)
DOCKER = BASE_DIR / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def validate_compose(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose():
    return YAML(typ="safe").load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def dockerfile():
    return (DOCKER / "Dockerfile").read_text()


def readme_section(title: str) -> str:
    text = (BASE_DIR / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_compose_file_matches_the_compose_spec_schema():
    result = validate_compose(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    restart: unless-stopped\n", "    restart_policy: always\n",
                                                       1))
    result = validate_compose(broken)
    assert result.returncode != 0 and "restart_policy" in result.stdout + result.stderr


def test_compose_has_web_mariadb_cron_events_and_traefik(compose):
    services = compose["services"]
    assert set(services) == {"traefik", "web", "cron", "events", "db"}
    db = services["db"]
    assert {"--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"} <= set(db["command"])
    assert "healthcheck.sh" in db["healthcheck"]["test"]
    assert any(volume.endswith(":/var/lib/mysql") for volume in db["volumes"])
    assert services["web"]["depends_on"]["db"]["condition"] == "service_healthy"
    # Our image is built here, never pulled: a registry image of the same name must not run with our secrets.
    assert services["web"]["pull_policy"] == "build"
    assert services["cron"]["pull_policy"] == services["events"]["pull_policy"] == "never"
    # The database is on an internal network only: nothing outside the application reaches it.
    assert db["networks"] == ["backend"] and compose["networks"]["backend"]["internal"] is True
    assert {"mariadb", "spool", "letsencrypt"} <= set(compose["volumes"])


def test_web_cron_and_events_share_the_spool_volume_where_the_image_keeps_it(compose, dockerfile):
    spool_dir = re.search(r"SPOOL_DIR=(\S+)", dockerfile).group(1)
    for name in ("web", "cron", "events"):
        service = compose["services"][name]
        mounts = dict(volume.split(":", 1) for volume in service["volumes"])
        assert spool_dir.startswith(mounts["spool"] + "/"), name
        assert service["env_file"] == "../.env"


def cron_branch() -> str:
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    return entrypoint[entrypoint.index("  cron)"):entrypoint.index(";;", entrypoint.index("  cron)"))]


def test_events_runs_the_sender_under_an_init_that_forwards_sigterm(compose):
    events = compose["services"]["events"]
    assert events["command"] == ["deliver_events"] and events["init"] is True
    assert "edge" in events["networks"]  # the site is outside


def test_cron_runs_check_health_every_minute(compose):
    cron = compose["services"]["cron"]
    assert cron["command"] == ["cron"] and cron["init"] is True
    branch = cron_branch()
    assert "python manage.py check_health" in branch and "sleep $((60 - $(date +%s) % 60))" in branch


def test_cron_runs_reconcile_every_two_hours_in_the_background(tmp_path):
    """The cron branch, run for real with a clock that moves: reconcile starts at once, then every 7200 s, and
    never holds up the minute's check_health (it runs in the background)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    clock = tmp_path / "clock"
    clock.write_text("1008000")  # on the minute
    # Stand-ins: python notes its command (reconcile then takes 20 s, as a long run would); date reads the clock;
    # sleep moves it by a minute (and stops the loop after five simulated hours).
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$(cat {clock}) $*" >> {log}\n'
                                    f'[ "$2" != reconcile ] || exec /bin/sleep 20\n')
    (bin_dir / "date").write_text(f"#!/bin/sh\ncat {clock}\n")
    (bin_dir / "sleep").write_text(
        f"#!/bin/sh\nnow=$(($(cat {clock}) + $1)); echo $now > {clock}\n"
        f"[ $now -lt 1026000 ] || kill $PPID\n")
    for stand_in in bin_dir.iterdir():
        stand_in.chmod(0o755)
    # Five hours of checks in less than the 60 s three reconciles take one after another: none waited for a run.
    subprocess.run(["sh", "-c", cron_branch().split(")", 1)[1]], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                   timeout=40)
    calls = [line.split(" ", 1) for line in log.read_text().splitlines()]
    reconciles = [int(moment) for moment, command in calls if command == "manage.py reconcile"]
    checks = [int(moment) for moment, command in calls if command == "manage.py check_health"]
    # A run notes the clock when its process starts, which under load can be a simulated minute or two
    # after the loop started it.
    assert len(checks) == 300 and len(reconciles) == 3
    assert all(0 <= noted - due < 600 for noted, due in zip(reconciles, (1008000, 1015200, 1022400), strict=True))


def test_traefik_terminates_tls_for_the_domain_and_keeps_the_token_out_of_its_log(compose):
    traefik = compose["services"]["traefik"]
    flags = dict(flag.partition("=")[::2] for flag in traefik["command"])
    assert flags["--certificatesresolvers.letsencrypt.acme.httpchallenge.entrypoint"] == "web"
    # A starting or unhealthy web container: 503 from Traefik, never 404 for the webhook URL.
    assert flags["--providers.docker.allowEmptyServices"] == "true"
    assert flags["--entrypoints.web.http.redirections.entrypoint.to"] == "websecure"
    # The request path is /webhook/<token>: the JSON access log drops it, and every header (Referer).
    assert flags["--accesslog.format"] == "json"
    assert flags["--accesslog.fields.names.RequestPath"] == "drop"
    assert flags["--accesslog.fields.headers.defaultmode"] == "drop"
    labels = compose["services"]["web"]["labels"]
    assert "traefik.http.routers.epnhook.tls.certresolver=letsencrypt" in labels
    assert any(label.startswith("traefik.http.routers.epnhook.rule=Host(`${DOMAIN:?") for label in labels)
    assert "traefik.http.routers.epnhook.entrypoints=websecure" in labels


def test_the_web_container_believes_forwarded_headers_from_traefik_alone(compose):
    """Not the edge network: its gateway is the host, and the host is not our proxy."""
    edge = compose["networks"]["edge"]["ipam"]["config"][0]
    subnet, dynamic = ipaddress.ip_network(edge["subnet"]), ipaddress.ip_network(edge["ip_range"])
    traefik = ipaddress.ip_address(compose["services"]["traefik"]["networks"]["edge"]["ipv4_address"])
    # Docker hands out the ip_range; Traefik's fixed address lies outside it, and is not the gateway.
    assert traefik in subnet and traefik not in dynamic and dynamic.subnet_of(subnet)
    assert traefik != next(subnet.hosts())
    environment = compose["services"]["web"]["environment"]
    assert ipaddress.ip_network(environment["TRUSTED_PROXIES"]) == ipaddress.ip_network(traefik)  # a /32
    assert environment["FORWARDED_ALLOW_IPS"] == str(traefik)  # gunicorn: X-Forwarded-Proto


def test_mariadb_root_has_no_password_in_the_log_and_no_remote_login(compose):
    environment = compose["services"]["db"]["environment"]
    # The image prints a password it generates (MARIADB_RANDOM_ROOT_PASSWORD) to `docker compose logs db`.
    assert not {"MARIADB_RANDOM_ROOT_PASSWORD", "MARIADB_ROOT_PASSWORD"} & set(environment)
    assert environment["MARIADB_ROOT_PASSWORD_HASH"].startswith("${MARIADB_ROOT_PASSWORD_HASH:?")
    assert environment["MARIADB_ROOT_HOST"] == "localhost"


def test_dockerfile_is_multi_stage_slim_and_unprivileged(dockerfile):
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert len(stages) == 2
    build, runtime = stages
    assert build.startswith("python:3.11-slim") and runtime.startswith("python:3.11-slim")
    for build_only in ("gcc", "libmariadb-dev", "pkg-config"):
        assert build_only in build and build_only not in runtime
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    user = re.search(r"^USER (\S+)$", runtime, re.M).group(1)
    assert user not in ("root", "0") and "useradd --system --uid 10001 --user-group" in runtime
    assert re.search(r"^HEALTHCHECK .*docker/healthcheck.py", runtime, re.M)
    assert "/health" in (DOCKER / "healthcheck.py").read_text()


def test_no_secret_or_local_state_goes_into_the_image():
    ignored = (BASE_DIR / ".dockerignore").read_text().split()
    for pattern in (".env", ".env.*", ".venv", "var", "db.sqlite3", ".git"):
        assert pattern in ignored


def image_commands() -> set[str]:
    """Commands the image runs: the Dockerfile's RUN/HEALTHCHECK lines and the entry point's branches."""
    dockerfile = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.removeprefix("RUN ") for line in dockerfile.splitlines() if line.startswith("RUN ")]
    healthcheck = re.search(r"^HEALTHCHECK .* CMD (\[.*\])$", dockerfile, re.M).group(1)
    lines.append(" ".join(re.findall(r'"([^"]+)"', healthcheck)))
    lines += (DOCKER / "entrypoint.sh").read_text().splitlines()
    commands = set()
    for line in lines:
        for match in re.finditer(r"((?:python|gunicorn) (?:manage\.py|docker/|--config)[^|;&]*)", line):
            commands.add(" ".join(shlex.split(match.group(1))))
    return commands


def documented_commands() -> set[str]:
    section = readme_section("Deploy with docker compose")
    block = section[section.index("What the image runs"):]
    block = block[block.index("```sh\n") + 6:block.index("```", block.index("```sh\n") + 6)]
    return {line.split("#")[0].strip() for line in block.splitlines() if line.strip()}


def test_the_readme_documents_exactly_the_commands_the_image_runs():
    # The pass-through (`docker run epnhook <command>`) is documented in prose beside the list.
    assert documented_commands() == image_commands() - {"python manage.py $@"}


def test_readme_deploy_steps_use_files_and_flags_that_exist():
    section = readme_section("Deploy with docker compose")
    assert "docker build -f docker/Dockerfile -t epnhook:latest ." in section
    # The compose file builds the same image name the README's docker build tags.
    assert YAML(typ="safe").load(COMPOSE_FILE.read_text())["services"]["web"]["image"] == "epnhook:latest"
    assert "docker compose -f docker/compose.yaml --env-file .env up -d" in section
    assert "epnhook:latest setup --docker" in section and "-e ENV_FILE=/config/.env" in section
    help_text = subprocess.run([sys.executable, "manage.py", "setup", "--help"], cwd=BASE_DIR, capture_output=True,
                               text=True, env={"PATH": os.environ["PATH"], "ENV_FILE": ""}).stdout
    assert "--docker" in help_text


def test_entrypoint_passes_other_commands_to_manage_py():
    environment = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "ENV_FILE": "",
                   "SECRET_KEY": secrets.token_urlsafe(50), "WEBHOOK_SECRET_TOKEN": secrets.token_urlsafe(32),
                   "DOMAIN": "webhook.example.com", "LANG": "C.UTF-8"}
    result = subprocess.run([str(DOCKER / "entrypoint.sh"), "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_compose_references_resolve_and_its_variables_are_the_ones_setup_writes(compose):
    """What the schema cannot see: names that must match across the file, the image and the wizard."""
    services, volumes, networks = compose["services"], set(compose["volumes"]), set(compose["networks"])
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        named = {volume.split(":")[0] for volume in service.get("volumes", []) if not volume.startswith(("/", "."))}
        assert named <= volumes, name
        assert set(service.get("networks", [])) <= networks, name
    traefik_network = next(flag.split("=", 1)[1] for flag in services["traefik"]["command"]
                           if flag.startswith("--providers.docker.network="))
    assert traefik_network == compose["networks"]["edge"]["name"]
    assert "edge" in services["web"]["networks"]

    answers = wizard.Answers(domain="webhook.example.com", admins=["ops@example.com"], mail="console")
    wizard.use_docker_database(answers)
    answers.generate_missing_secrets()
    written = {line.split("=", 1)[0] for line in wizard.render_env(answers, docker=True, kept_lines=[]).splitlines()
               if "=" in line and not line.startswith("#")}
    interpolated = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_FILE.read_text()))
    assert interpolated == {"DOMAIN", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD_HASH"} and interpolated <= written
    assert f"{wizard.DOCKER_DB_HOST}:3306" in answers.database_url and wizard.DOCKER_DB_HOST in services


GALERA_FILE = DOCKER / "compose.galera.yaml"
GALERA_NODES = ("db", "db2", "db3")
REPLICAS = {"web": "db", "web2": "db2", "web3": "db3"}


@pytest.fixture(scope="module")
def galera():
    return YAML(typ="safe").load(GALERA_FILE.read_text())


def test_the_galera_override_matches_the_compose_spec_schema():
    result = validate_compose(GALERA_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_galera_override_runs_three_writable_nodes_each_on_its_own_volume(compose, galera):
    services = galera["services"]
    for name in GALERA_NODES:
        options = dict(flag.removeprefix("--").partition("=")[::2] for flag in services[name]["command"])
        # What Galera needs (docs/SCALING.md), and compose.yaml's character set, which `command` replaces.
        assert options["wsrep-on"] == "ON" and options["wsrep-provider"].endswith("/libgalera_smm.so")
        assert options["binlog-format"] == "ROW" and options["innodb-autoinc-lock-mode"] == "2"
        assert options["character-set-server"] == "utf8mb4"
        assert options["collation-server"] == compose["services"]["db"]["command"][1].split("=")[1]
        # The default address names every node; the variable exists for bootstrapping one.
        address = re.fullmatch(r"\$\{GALERA_CLUSTER_ADDRESS:-gcomm://([\w,]+)\}", options["wsrep-cluster-address"])
        assert address and address.group(1).split(",") == list(GALERA_NODES)
        assert "--galera_online" in services[name]["healthcheck"]["test"]
        assert services[name]["networks"] == ["backend"]  # the internal network, as compose.yaml's db
    data = [compose["services"]["db"]["volumes"][0], *(services[name]["volumes"][0] for name in GALERA_NODES[1:])]
    assert all(volume.endswith(":/var/lib/mysql") for volume in data)
    named = {volume.split(":")[0] for volume in data}
    assert len(named) == 3 and named <= set(compose["volumes"]) | set(galera["volumes"])


def test_each_replica_writes_through_its_own_node_behind_traefiks_health_check(compose, galera):
    services = galera["services"]
    answers = wizard.Answers(domain="webhook.example.com", admins=["ops@example.com"], mail="console")
    wizard.use_docker_database(answers)
    answers.generate_missing_secrets()
    for replica, node in REPLICAS.items():
        service = services[replica]
        # The URL setup --docker writes, on this replica's node.
        url = service["environment"]["DATABASE_URL"].replace("${MARIADB_PASSWORD}", answers.db_password)
        assert url == answers.database_url.replace(f"@{wizard.DOCKER_DB_HOST}:", f"@{node}:")
        labels = dict(label.split("=", 1) for label in service["labels"])
        assert labels["traefik.http.services.epnhook.loadbalancer.healthcheck.path"] == "/health"
        assert labels["traefik.http.services.epnhook.loadbalancer.healthcheck.hostname"].startswith("${DOMAIN:?")
        if replica != "web":
            # The rest (image, .env, Traefik's router, the spool volume) is compose.yaml's web, unchanged.
            assert service["extends"] == {"file": "compose.yaml", "service": "web"}
            # Its node synced, and web up: the migrations, which every replica runs as it starts, ran once.
            assert service["depends_on"] == {node: {"condition": "service_healthy"},
                                             "web": {"condition": "service_healthy"}}
    interpolated = set(re.findall(r"\$\{([A-Z_]+)", GALERA_FILE.read_text()))
    assert interpolated == {"DOMAIN", "MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD_HASH", "GALERA_CLUSTER_ADDRESS"}


def test_docs_start_the_cluster_with_the_files_and_services_that_exist(galera):
    scaling = (BASE_DIR / "docs" / "SCALING.md").read_text()
    command = "docker compose -f docker/compose.yaml -f docker/compose.galera.yaml --env-file .env"
    assert f"{command} up -d" in scaling and f'C="{command}"' in scaling
    block = scaling[scaling.index("### Starting the cluster"):scaling.index("### Across hosts")]
    assert "GALERA_CLUSTER_ADDRESS=gcomm:// $C up -d db " in block and "$C up -d db2 db3 " in block
    assert {"db", "db2", "db3", "web", "web2", "web3"} <= set(galera["services"])
    assert "docker/compose.galera.yaml" in readme_section("Deploy with docker compose")
