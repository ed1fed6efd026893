"""The Makefile: `make test` installs the system packages its tests need, `make run` does not.

make runs for real, on a copy of the Makefile beside an installed-looking .venv, with a PATH that
holds only the tools its recipes use. What would change the machine (apt-get, sudo, dpkg's answers,
the user id) is a stub that records its arguments: no package is ever installed here.
"""

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
REAL_TOOLS = ("make", "grep", "env", "touch", "mv")
STUBS = {
    # Installed: the packages named in FAKE_INSTALLED ($3 of `dpkg-query -W -f=... <package>`).
    "dpkg-query": 'for p in $FAKE_INSTALLED; do [ "$p" = "$3" ] && echo "install ok installed" && exit 0; done; exit 1',
    "apt-get": 'echo "apt-get $*" >> "$FAKE_LOG"',
    "sudo": 'echo "sudo" >> "$FAKE_LOG"; exec "$@"',
    "id": 'echo "$FAKE_UID"',
    "pkg-config": "exit 0",  # the MariaDB client library and a compiler are there
    "cc": "exit 0",
}


def script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def checkout(tmp_path):
    """The Makefile in a directory of its own; .venv looks installed (its stamps are newer than the
    requirements) and its python records what it is asked to run."""
    root = tmp_path / "checkout"
    (root / "bench").mkdir(parents=True)
    shutil.copy(BASE_DIR / "Makefile", root)
    for name in ("requirements.txt", "requirements-dev.txt", "bench/requirements.txt", ".env"):
        (root / name).write_text("")
    (root / ".venv" / "bin").mkdir(parents=True)
    script(root / ".venv" / "bin" / "python", 'echo "python $*" >> "$FAKE_LOG"')
    later = time.time() + 60
    for stamp in (".dev", ".runtime", ".bench"):
        (root / ".venv" / stamp).touch()
        os.utime(root / ".venv" / stamp, (later, later))
    return root


def run_make(checkout: Path, *args: str, uid: int = 1000, sudo: bool = True, installed: str = "",
             **environment: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`make *args` in `checkout`; returns the result and the stubs' log (one line per call)."""
    tools = checkout.parent / "bin"
    tools.mkdir(exist_ok=True)
    for name in REAL_TOOLS:
        (tools / name).unlink(missing_ok=True)
        (tools / name).symlink_to(shutil.which(name))
    for name, body in STUBS.items():
        script(tools / name, body)
    if not sudo:
        (tools / "sudo").unlink()
    log = checkout.parent / "calls.log"
    log.write_text("")
    env = {"PATH": str(tools), "FAKE_LOG": str(log), "FAKE_UID": str(uid), "FAKE_INSTALLED": installed, **environment}
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=checkout, env=env, capture_output=True,
                            text=True, timeout=60)
    return result, log.read_text().splitlines()


def packages_list(name: str) -> list[str]:
    """A package list of the Makefile, as make expands it."""
    result = subprocess.run(["make", "-s", "--no-print-directory", "-f", str(BASE_DIR / "Makefile"), "--eval",
                             f"print-list: ; @echo $({name})", "print-list"], capture_output=True, text=True)
    return result.stdout.split()


TEST_PACKAGES = packages_list("TEST_PACKAGES")
MARIADB_TEST_PACKAGES = packages_list("MARIADB_TEST_PACKAGES")


def test_the_lists_name_what_the_tests_use():
    assert {"chromium", "chromium-driver", "systemd"} <= set(TEST_PACKAGES)
    assert {"mariadb-server", "mariadb-client", "wrk"} <= set(MARIADB_TEST_PACKAGES)


def test_make_test_installs_the_test_packages_through_sudo_before_the_tests_run(checkout):
    result, calls = run_make(checkout, "test", PYTEST_ARGS="-q")
    assert result.returncode == 0, result.stderr
    assert calls == ["sudo", "apt-get update -qq", "sudo", f"apt-get install -y -qq {' '.join(TEST_PACKAGES)}",
                     "python -m pytest -q"]


def test_on_mariadb_it_also_installs_what_the_mariadb_only_tests_need(checkout):
    result, calls = run_make(checkout, "test", uid=0, DATABASE_URL="mysql://root@127.0.0.1:3306/epnhook")
    assert result.returncode == 0, result.stderr
    everything = " ".join(TEST_PACKAGES + MARIADB_TEST_PACKAGES)
    assert calls[:2] == ["apt-get update -qq", f"apt-get install -y -qq {everything}"]


def test_only_missing_packages_are_installed(checkout):
    result, calls = run_make(checkout, "test", installed=" ".join(TEST_PACKAGES[1:]))
    assert result.returncode == 0, result.stderr
    assert f"apt-get install -y -qq {TEST_PACKAGES[0]}" in calls
    result, calls = run_make(checkout, "test", installed=" ".join(TEST_PACKAGES))
    assert calls == ["python -m pytest"]


def test_without_root_or_sudo_it_names_the_packages_and_stops(checkout):
    result, calls = run_make(checkout, "test", sudo=False)
    assert result.returncode != 0
    assert f"Please install: {' '.join(TEST_PACKAGES)}" in result.stderr
    assert calls == []  # the tests did not start


def test_make_run_installs_no_test_package(checkout):
    result, calls = run_make(checkout, "run")
    assert result.returncode == 0, result.stderr
    assert not any(call.startswith(("apt-get", "sudo")) for call in calls), calls
    assert calls[0] == "python manage.py migrate --noinput"


def test_ci_takes_the_packages_from_the_makefile():
    ci = (BASE_DIR / ".ci" / "run").read_text()
    assert re.search(r"^DATABASE_URL=\S+ make system-deps test-deps$", ci, re.M)
    for package in TEST_PACKAGES + MARIADB_TEST_PACKAGES + packages_list("BUILD_PACKAGES"):
        assert not re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", ci), f"{package} is listed in .ci/run too"


def test_the_development_env_file_is_private_from_the_start(checkout):
    (checkout / ".env").unlink()
    tools = checkout.parent / "bin"
    tools.mkdir()
    for name in ("make", "mv"):
        (tools / name).symlink_to(shutil.which(name))
    # A umask that hides nothing, and no chmod on the PATH: only a file born 0600 passes.
    result = subprocess.run(["/bin/sh", "-c", f"umask 0 && exec make --no-print-directory .env PY={sys.executable}"],
                            cwd=checkout, capture_output=True, text=True, timeout=60,
                            env={"PATH": str(tools), "PYTHONPATH": str(BASE_DIR)})
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((checkout / ".env").stat().st_mode) == 0o600
    assert "SECRET_KEY=" in (checkout / ".env").read_text()
