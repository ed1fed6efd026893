"""Running manage.py in a child process, the way cron and an operator run it.

Used where the command must meet a database the test process does not use (a stopped private
MariaDB, an SQLite file), and to prove that a failure ends in a message and an exit code, not a
traceback. The child gets the production settings module and an explicit environment.
"""

import os
import subprocess
import sys
from pathlib import Path

from tests.settings import TEST_TOKEN

BASE_DIR = Path(__file__).resolve().parent.parent


def manage(*args: str, database_url: str, var: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run `manage.py *args` with DATABASE_URL, and SPOOL_DIR and ALERT_STATE_DIR under `var`."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=environment(database_url, var, **env),
        capture_output=True, text=True, timeout=timeout,
    )


def start_manage(*args: str, database_url: str, var: Path, **env: str) -> subprocess.Popen:
    """Like manage(), without waiting: for runs that must overlap."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=environment(database_url, var, **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def environment(database_url: str, var: Path, **env: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "epnhook.settings",
        "ENV_FILE": "",
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": database_url,
        "SPOOL_DIR": str(var / "spool"),
        "ALERT_STATE_DIR": str(var / "alerts"),
        "WEBHOOK_SECRET_TOKEN": TEST_TOKEN,
        "ADMINS": "Ops <ops@example.com>",
        "EMAIL_URL": "consolemail://",
        "LANGUAGE_CODE": "en",
        **env,
    }


def assert_clean_failure(result: subprocess.CompletedProcess, message: str) -> None:
    """The command failed with `message` on stderr and a non-zero exit, and printed no traceback."""
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
