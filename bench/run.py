"""`make bench`: our receiver against the baseline, in one run, on one private MariaDB.

What it does, in order:
1. starts a private mariadbd (its own data directory under var/bench, a free port, durable commits:
   innodb_flush_log_at_trx_commit=1), creates fresh databases for both receivers and migrates ours;
2. starts our service exactly as production does (gunicorn with gunicorn.conf.py, DEBUG off) and the
   baseline (bench/baseline.py: FastAPI on one uvicorn process) twice: as the original was, and with
   its database calls in a thread pool (a stronger variant, shown so the model need not be trusted);
3. drives each with wrk and bench/postback.lua, a new unique postback per request, for a fixed time,
   rotating the receivers for several rounds so that load from elsewhere on the machine hits all alike;
   each run's uniq_ids start with a tag of its own, so the ids it sent are known without the receiver;
4. counts the rows carrying each run's ids in the database (lost = sent but not stored) and writes a
   Markdown report with requests/s, p50, p99, errors, rows, RSS, CPU use and the ratios to the baseline;
5. runs bench/admin_pages.py (admin page timings) and bench/api_pages.py (read API page timings) on
   the same data set, unless --admin 0, and appends their tables.

With --outbox, our service runs a second time in the rotation, as `epnhook-outbox`: OUTBOUND_URL set, so every
postback also writes its outbound event (nothing sends them: the cost measured is the write path's), with
its ratio to `epnhook` and the event count checked (one per order).

Exit status 1 when any request failed or any postback sent is missing: correctness is not noise.
"""

import argparse
import base64
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pymysql

from devtools.mariadb import PrivateMariaDB, free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent

BIN = Path(sys.executable).parent
LUA = ROOT / "bench" / "postback.lua"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --- processes ------------------------------------------------------------------------------------

def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def rss_bytes(pid: int) -> int:
    total = 0
    for member in process_tree(pid):
        try:
            total += int(_stat_fields(member)[21]) * PAGE_SIZE
        except (OSError, IndexError):
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid` and its live descendants, including their reaped children."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


class Service:
    def __init__(self, name: str, command: list[str], env: dict, port: int, ready_path: str, log: Path):
        self.name, self.command, self.env, self.port, self.ready_path, self.log = \
            name, command, env, port, ready_path, log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=log,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{self.ready_path}"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            try:
                request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} did not answer {url} within {timeout}s; see {self.log}")

    def stop(self) -> None:
        stop_process(self.process, 20)


# --- one load run ----------------------------------------------------------------------------------

@dataclass
class LoadRun:
    receiver: str
    label: str
    # The prefix of every uniq_id this run sends ("<tag>-<wrk thread>-<n>", bench/postback.lua).
    tag: str
    seconds: float = 0.0
    requests: int = 0
    sent: int = 0
    acknowledged: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rss_peak: int = 0
    cpu: dict = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def drive(service: Service, token: str, label: str, seconds: float, args, db: PrivateMariaDB,
          workdir: Path) -> LoadRun:
    """Run wrk against `service` for `seconds`; sample RSS while it runs; return the measured figures."""
    summary_file = workdir / f"wrk-{service.name}--{label}.txt"
    run = LoadRun(service.name, label, tag=f"{label}-{secrets.token_hex(4)}")
    command = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{seconds}s", "--timeout", "10s",
               "-s", str(LUA), f"http://127.0.0.1:{service.port}/", "--", token, run.tag]
    stop_sampling = threading.Event()

    def sample_rss():
        while not stop_sampling.wait(0.5):
            run.rss_peak = max(run.rss_peak, rss_bytes(service.process.pid))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    before = (cpu_seconds(service.process.pid), cpu_seconds(db.process.pid), machine_busy_seconds())
    sampler.start()
    wrk = subprocess.Popen(command, env={**os.environ, "BENCH_SUMMARY_FILE": str(summary_file)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(wrk.pid, 0)
    output = wrk.stdout.read().decode()
    stop_sampling.set()
    sampler.join()
    after = (cpu_seconds(service.process.pid), cpu_seconds(db.process.pid), machine_busy_seconds())
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"wrk failed:\n{output}")
    summary = dict(line.split(" ", 1) for line in summary_file.read_text().splitlines())
    run.seconds = int(summary["duration_us"]) / 1e6
    run.requests = int(summary["requests"])
    run.sent = int(summary["sent"])
    run.acknowledged = int(summary["acknowledged"])
    socket_errors = sum(int(summary[f"errors_{kind}"]) for kind in ("connect", "read", "write", "timeout"))
    # Every completed request that did not come back 2xx is an error, as is every socket error.
    run.errors = socket_errors + run.requests - run.acknowledged
    run.p50_ms = int(summary["latency_p50_us"]) / 1000
    run.p99_ms = int(summary["latency_p99_us"]) / 1000
    run.max_ms = int(summary["latency_max_us"]) / 1000
    wrk_cpu = usage.ru_utime + usage.ru_stime
    server_cpu, db_cpu = after[0] - before[0], after[1] - before[1]
    machine = after[2] - before[2]
    run.cpu = {"server": server_cpu / run.seconds, "mariadbd": db_cpu / run.seconds, "wrk": wrk_cpu / run.seconds,
               "other": max(0.0, machine - server_cpu - db_cpu - wrk_cpu) / run.seconds}
    return run


# --- checking what was stored ---------------------------------------------------------------------

def verify(db: PrivateMariaDB, database: str, runs: list[LoadRun], ours: bool, settle: float = 10) -> dict:
    """Count the rows carrying the uniq_ids that `runs` (one receiver's, warm-ups included) sent.

    The ids are the runs' own (tag, wrk thread, counter), never the ones the receiver answers with, so a
    receiver that acknowledges without storing, or answers with the id of another row, shows as lost.
    Lost is sent minus stored: a postback still in flight when wrk stopped counts too, since wrk writes
    each request whole before it waits for the answer, so the receiver has it and must store it; the
    count is repeated for up to `settle` seconds, while those are still being stored.
    """
    deadline = time.monotonic() + settle
    while True:
        result = count_stored(db, database, runs, ours)
        if result["lost"] <= 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def count_stored(db: PrivateMariaDB, database: str, runs: list[LoadRun], ours: bool) -> dict:
    result = {"sent": sum(run.sent for run in runs), "acknowledged": sum(run.acknowledged for run in runs),
              "stored": 0}
    if ours:
        result["deliveries"] = result["with_delivery"] = result["events"] = 0
    connection = pymysql.connect(host="127.0.0.1", port=db.port, user="root", database=database)
    try:
        with connection.cursor() as cursor:
            for run in runs:
                pattern = f"{run.tag}-%"
                if ours:
                    # Our service stores the raw delivery with the order, in the same transaction.
                    cursor.execute("SELECT COUNT(DISTINCT o.id), COUNT(d.id), COUNT(DISTINCT d.order_id)"
                                   " FROM orders_order o LEFT JOIN orders_delivery d ON d.order_id = o.id"
                                   " WHERE o.uniq_id LIKE %s", [pattern])
                    stored, deliveries, with_delivery = cursor.fetchone()
                    result["deliveries"] += deliveries
                    result["with_delivery"] += with_delivery
                    # Each new order's first status is a change of its current status: one event each.
                    cursor.execute("SELECT COUNT(*) FROM orders_outboundevent WHERE uniq_id LIKE %s", [pattern])
                    result["events"] += cursor.fetchone()[0]
                else:
                    cursor.execute("SELECT COUNT(*) FROM webhook_events WHERE uniq_id LIKE %s", [pattern])
                    (stored,) = cursor.fetchone()
                result["stored"] += stored
    finally:
        connection.close()
    result["lost"] = result["sent"] - result.get("with_delivery", result["stored"])
    return result


# --- the report ------------------------------------------------------------------------------------

def mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def machine_lines(db: PrivateMariaDB) -> list[str]:
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    memory_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
    version = db.sql("SELECT VERSION()").strip()
    return [f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            f"- machine: {os.cpu_count()} CPUs ({cpu_model}), {memory_kib / 2**20:.1f} GiB memory, "
            f"{platform.system()} {platform.release()}",
            f"- software: Python {platform.python_version()}, MariaDB {version} "
            "(innodb_flush_log_at_trx_commit=1, private server), wrk (Debian)"]


RECEIVERS = ("baseline", "baseline-threadpool", "epnhook")
OUTBOX = "epnhook-outbox"
# The outbound events' promise: configuring an endpoint costs a postback at most this much more.
OUTBOX_BUDGET = 1.10


def receivers(args) -> tuple[str, ...]:
    return RECEIVERS + (OUTBOX,) if args.outbox else RECEIVERS


def report(args, runs: list[LoadRun], checks: dict, idle_rss: dict, db: PrivateMariaDB) -> tuple[str, bool]:
    by_receiver = {name: [r for r in runs if r.receiver == name] for name in receivers(args)}
    lines = ["## Ingest: epnhook against the baseline", "", *machine_lines(db),
             f"- load: wrk, {args.wrk_threads} thread(s), {args.connections} connections, closed loop, a unique GET "
             f"postback per request; {args.rounds} rounds of {args.duration} s per receiver, the order rotating "
             f"each round, after a {args.warmup} s warm-up each", "",
             "| round | receiver | req/s | p50 ms | p99 ms | max ms | errors | CPU: server | mariadbd | wrk | other "
             "| server CPU ms/request |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        lines.append(f"| {run.label} | {run.receiver} | {run.rps:.0f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} | "
                     f"{run.max_ms:.0f} | {run.errors} | {run.cpu['server']:.2f} | {run.cpu['mariadbd']:.2f} | "
                     f"{run.cpu['wrk']:.2f} | {run.cpu['other']:.2f} | {1000 * run.cpu['server'] / run.rps:.2f} |")
    lines += ["", "CPU columns are cores busy on average during the run; 'other' is everything else on the machine "
              "(the noise). CPU per request is the figure least disturbed by that noise.", "",
              "| receiver | req/s | p50 ms | p99 ms | errors | sent | acknowledged | stored | lost | RSS idle "
              "| RSS under load |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in receivers(args):
        check, own = checks[name], by_receiver[name]
        stored = f"{check['stored']}" + (f" orders + {check['deliveries']} deliveries" if "deliveries" in check else "")
        lines.append(f"| {name} | {statistics.median(r.rps for r in own):.0f} | "
                     f"{statistics.median(r.p50_ms for r in own):.1f} | {statistics.median(r.p99_ms for r in own):.1f} "
                     f"| {sum(r.errors for r in own)} | {check['sent']} | {check['acknowledged']} | {stored} "
                     f"| {check['lost']} | "
                     f"{mib(idle_rss[name])} | {mib(max(r.rss_peak for r in own))} |")
    ratios = {}
    for base in RECEIVERS[:2]:
        pairs = list(zip(by_receiver[base], by_receiver["epnhook"], strict=True))
        ratios[base] = [statistics.median(ours.rps / other.rps for other, ours in pairs),
                        statistics.median(ours.p50_ms / other.p50_ms for other, ours in pairs),
                        statistics.median(ours.p99_ms / other.p99_ms for other, ours in pairs)]
        lines.append(f"| **epnhook / {base}** | **{ratios[base][0]:.2f}x** | **{ratios[base][1]:.2f}x** | "
                     f"**{ratios[base][2]:.2f}x** | | | | | | | |")
    outbox_lines = outbox_report(by_receiver, checks) if args.outbox else []
    errors = sum(r.errors for r in by_receiver["epnhook"])
    lost = checks["epnhook"]["lost"]
    rps_ratio, _, p99_ratio = ratios["baseline"]
    targets = [("throughput >= 1.5x baseline", rps_ratio >= 1.5), ("p99 <= 0.5x baseline", p99_ratio <= 0.5),
               ("zero errors", errors == 0), ("zero lost", lost == 0)]
    lines += ["", "Figures per receiver are medians over the rounds; ratios are medians of the per-round ratios "
              "(each round runs every receiver back to back). Sent, acknowledged (2xx), stored and lost count every "
              "postback of the runs, warm-ups included. Stored counts the rows carrying the uniq_ids each run sent, "
              "never the ids a receiver answers with; lost is sent minus stored, the postbacks still in flight when "
              "wrk stopped included (the receiver has them whole). 'baseline' models the original (database calls "
              "on the event loop); "
              "'baseline-threadpool' is the same code with its database calls in a thread pool.", "",
              "Targets (against 'baseline'): " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}"
                                                           for name, ok in targets), "", *outbox_lines]
    all_correct = all(r.errors == 0 for r in runs) and all(check["lost"] == 0 for check in checks.values())
    if args.outbox:
        # Every postback is a new order: each must have written exactly its event, or the outbox lost one.
        all_correct = all_correct and checks[OUTBOX]["events"] == checks[OUTBOX]["stored"]
    return "\n".join(lines), all_correct


def outbox_report(by_receiver: dict, checks: dict) -> list[str]:
    """`epnhook-outbox` against `epnhook` in the same rounds: medians of the per-round ratios."""
    pairs = list(zip(by_receiver["epnhook"], by_receiver[OUTBOX], strict=True))
    rps = statistics.median(outbox.rps / plain.rps for plain, outbox in pairs)
    p99 = statistics.median(outbox.p99_ms / plain.p99_ms for plain, outbox in pairs)
    cpu = statistics.median((outbox.cpu["server"] / outbox.rps) / (plain.cpu["server"] / plain.rps)
                            for plain, outbox in pairs)
    check = checks[OUTBOX]
    return ["## Outbound events: the cost of an endpoint configured", "",
            "| epnhook-outbox / epnhook | req/s | p99 ms | server CPU ms/request | events written | orders |",
            "|---|---:|---:|---:|---:|---:|",
            f"| ratio | {rps:.3f}x | {p99:.3f}x | {cpu:.3f}x | {check['events']} | {check['stored']} |", "",
            f"Target: an endpoint costs at most {OUTBOX_BUDGET - 1:.0%} (server CPU per request, the figure least "
            f"disturbed by the machine's noise): {'met' if cpu <= OUTBOX_BUDGET else 'NOT met'}; throughput "
            f"{'within' if rps >= 1 / OUTBOX_BUDGET else 'NOT within'} it.", ""]


# --- main --------------------------------------------------------------------------------------------

def service_environment(database_url: str, token: str, workdir: Path) -> dict[str, str]:
    """Our service's settings for a benchmark: production's (DEBUG off), a fresh secret, one webhook
    token, mail to the console, and the spool and alert state under `workdir`. The settings module is
    named, so that one set in the caller's environment (a test run's, say) is not benchmarked instead."""
    return {"DJANGO_SETTINGS_MODULE": "epnhook.settings", "ENV_FILE": "", "DEBUG": "False",
            "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": database_url, "WEBHOOK_SECRET_TOKEN": token, "EMAIL_URL": "consolemail://",
            "SPOOL_DIR": str(workdir / "spool"), "ALERT_STATE_DIR": str(workdir / "alerts")}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before the first run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--admin", type=int, default=1, help="0 skips the admin page timings (3M generated rows)")
    parser.add_argument("--outbox", action="store_true",
                        help="also run our service with OUTBOUND_URL set (events written, none sent), against it "
                             "without, in the same rounds")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--report", type=Path, default=ROOT / "var" / "bench" / "report.md")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian package wrk)")
    workdir = args.workdir
    runs_dir = workdir / "runs"
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir(parents=True)
    # The server's data directory is kept between runs so the admin timings can reuse their 3M rows.
    db = PrivateMariaDB(workdir / "mariadb")
    services: list[Service] = []
    try:
        db.start()
        for name in ("bench_epnhook", "bench_epnhook_outbox", "bench_baseline", "bench_baseline_threadpool"):
            db.sql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4 "
                   "COLLATE utf8mb4_unicode_ci")
        token = secrets.token_urlsafe(32)
        ours_env = {**os.environ, **service_environment(db.url("bench_epnhook"), token, runs_dir)}
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=ours_env,
                       check=True)
        port = free_port()
        plan = {"epnhook": (Service("epnhook", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "epnhook.wsgi"],
                                    {**ours_env, "GUNICORN_BIND": f"127.0.0.1:{port}"}, port, "/health",
                                    runs_dir / "gunicorn.log"), token)}
        if args.outbox:
            port = free_port()
            outbox_env = {**ours_env, "DATABASE_URL": db.url("bench_epnhook_outbox"),
                          "OUTBOUND_URL": "https://site.invalid/hook",
                          "OUTBOUND_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()}
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=outbox_env,
                           check=True)
            plan[OUTBOX] = (Service(OUTBOX, [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "epnhook.wsgi"],
                                    {**outbox_env, "GUNICORN_BIND": f"127.0.0.1:{port}"}, port, "/health",
                                    runs_dir / "gunicorn-outbox.log"), token)
        for name, calls in (("baseline", "inline"), ("baseline-threadpool", "threadpool")):
            port, baseline_token = free_port(), secrets.token_urlsafe(32)
            env = {**os.environ, "BASELINE_DATABASE": db.url(f"bench_{name.replace('-', '_')}"),
                   "BASELINE_TOKEN": baseline_token, "BASELINE_DB_CALLS": calls}
            subprocess.run([sys.executable, "-m", "bench.baseline"], cwd=ROOT, env=env, check=True)
            command = [str(BIN / "uvicorn"), "bench.baseline:app", "--host", "127.0.0.1", "--port", str(port),
                       "--workers", "1"]
            plan[name] = (Service(name, command, env, port, "/docs", runs_dir / f"{name}.log"), baseline_token)
        services = [service for service, _ in plan.values()]
        for service in services:
            service.start()
        time.sleep(2)
        idle_rss = {service.name: rss_bytes(service.process.pid) for service in services}
        warmups = [drive(service, service_token, "warmup", args.warmup, args, db, runs_dir)
                    for service, service_token in plan.values()]
        runs = []
        for round_number in range(1, args.rounds + 1):
            names = receivers(args)
            shift = (round_number - 1) % len(names)
            for name in names[shift:] + names[:shift]:
                service, service_token = plan[name]
                run = drive(service, service_token, str(round_number), args.duration, args, db, runs_dir)
                print(f"round {round_number} {name}: {run.rps:.0f} req/s, p50 {run.p50_ms:.1f} ms, "
                      f"p99 {run.p99_ms:.1f} ms, errors {run.errors}", flush=True)
                runs.append(run)
        checks = {}
        for name in receivers(args):
            own = [run for run in warmups + runs if run.receiver == name]
            checks[name] = verify(db, f"bench_{name.replace('-', '_')}", own, ours=name.startswith("epnhook"))
        text, correct = report(args, runs, checks, idle_rss, db)
        for service in services:
            service.stop()
        if args.admin:
            text += "\n" + admin_timings(db, ours_env)
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")
        print("\n" + text + f"\nReport written to {args.report}")
        return 0 if correct else 1
    finally:
        for service in services:
            service.stop()
        db.stop()


def admin_timings(db: PrivateMariaDB, ours_env: dict) -> str:
    """Run bench/admin_pages.py against its own database on the same server; return its Markdown table."""
    db.sql("CREATE DATABASE IF NOT EXISTS bench_admin CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    url = db.url("bench_admin")
    result = subprocess.run([sys.executable, "-m", "bench.admin_pages", "--database-url", url, "--orders", "1000000",
                             "--deliveries", "2000000", "--reuse"], cwd=ROOT, env={**ours_env, "DATABASE_URL": url},
                            check=True, stdout=subprocess.PIPE, text=True)
    # The read API's pages, on the same data set.
    api = subprocess.run([sys.executable, "-m", "bench.api_pages", "--database-url", url, "--orders", "1000000",
                          "--deliveries", "2000000", "--reuse"], cwd=ROOT, env={**ours_env, "DATABASE_URL": url},
                         check=True, stdout=subprocess.PIPE, text=True)
    return result.stdout + "\n" + api.stdout


if __name__ == "__main__":
    sys.exit(main())
