"""`make bench` and bench/cpu_per_postback.py, end to end on a private MariaDB (issue: ingest speed).

The benchmark is how "zero errors, zero postbacks lost" is shown at speed: these runs are short, so
they prove the machinery (our service under gunicorn, both baselines, wrk, the count in the database
of every postback sent, by the runs' own uniq_ids, the report), not the figures.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_MARIADB

pytestmark = pytest.mark.private_mariadb

ROOT = Path(__file__).resolve().parent.parent
RECEIVERS = ("baseline", "baseline-threadpool", "epnhook", "epnhook-outbox")


@pytest.fixture(autouse=True)
def tools():
    if not shutil.which("wrk"):
        if REQUIRE_MARIADB:
            pytest.fail("wrk is needed (apt-get install wrk; .ci/run installs it)")
        pytest.skip("wrk is not installed")


def test_make_bench_stores_every_postback_it_sent_and_reports_it(tmp_path):
    report = tmp_path / "report.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--admin", "0", "--duration", "2", "--rounds", "1", "--warmup", "1",
         "--connections", "4", "--outbox", "--workdir", str(tmp_path / "work"), "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = report.read_text()
    for receiver in RECEIVERS:
        # | receiver | req/s | p50 | p99 | errors | sent | acknowledged | stored | lost | RSS idle | RSS under load |
        row = re.search(rf"^\| {re.escape(receiver)} \| ([\d.]+) \| [\d.]+ \| [\d.]+ \| (\d+) \| (\d+) \| (\d+) "
                        r"\| (\d+)[^|]* \| (-?\d+) \|", text, re.MULTILINE)
        assert row, f"no summary row for {receiver}:\n{text}"
        rps, errors, sent, acknowledged, stored, lost = float(row[1]), *map(int, row.group(2, 3, 4, 5, 6))
        assert rps > 0 and acknowledged > 0 and errors == 0 and lost == 0, row[0]
        # Stored counts the rows carrying the run's own uniq_ids, in flight at the end included.
        assert stored == sent >= acknowledged, row[0]
    assert re.search(r"^\| epnhook \|.* \| (\d+) orders \+ \1 deliveries \|", text, re.MULTILINE), text
    assert "**epnhook / baseline**" in text and "zero lost: met" in text
    # With an endpoint configured, every order stored wrote its one outbound event.
    row = re.search(r"^\| ratio \| ([\d.]+)x \| [\d.]+x \| [\d.]+x \| (\d+) \| (\d+) \|", text, re.MULTILINE)
    assert row and float(row[1]) > 0 and int(row[2]) == int(row[3]) > 0, text


@pytest.mark.parametrize("token", ["environment", "admin"])
def test_cpu_per_postback_measures_only_created_postbacks(tmp_path, token):
    run = subprocess.run(
        [sys.executable, "-m", "bench.cpu_per_postback", "--postbacks", "200", "--batches", "2", "--warmup", "10",
         "--workdir", str(tmp_path / "work"), "--token", token],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"200 postbacks with the {token}'s token in 2 batches, each answered 200 created" in run.stdout
    best, median = map(float, re.search(r"our CPU per postback: best ([\d.]+) ms, median ([\d.]+) ms",
                                        run.stdout).groups())
    assert 0 < best <= median
    assert float(re.search(r"mariadbd CPU per postback: ([\d.]+) ms", run.stdout)[1]) > 0
