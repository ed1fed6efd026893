"""bench/api_pages.py end to end on a small data set in a private MariaDB: it proves the machinery (the
data set built by bench/admin_pages.py's code, a key, every page answered, the plans printed), not the
figures, which need the million rows of `make bench`."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.mariadb import PrivateMariaDB

pytestmark = pytest.mark.private_mariadb

ROOT = Path(__file__).resolve().parent.parent


def test_the_api_pages_are_timed_and_their_plans_printed(tmp_path):
    server = PrivateMariaDB(tmp_path / "mariadb")
    server.start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "bench.api_pages", "--database-url", server.url("bench_api"), "--orders",
             "3000", "--repeat", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| [\d.]+ \| [\d.]+ \| 50 \| (ok|TOO SLOW) \|$", run.stdout, re.MULTILINE)
    names = [name for name, _ms, _verdict in rows]
    assert len(names) == 9 and "one order with its history" in names, run.stdout
    # Each list page's plan (which index a few thousand rows get is the optimizer's business).
    plans = run.stdout.partition("Plans (EXPLAIN) of the list queries:")[2]
    assert plans.count("SIMPLE orders_order") == 8, plans
