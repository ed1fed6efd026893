"""CPU per stored postback, without HTTP and without the load generator: the low-noise figure.

`make bench` answers "how fast, against the baseline", but on a shared two-core machine one run can
swing by a sixth. This script answers "did a change make a postback cheaper" steadily enough to
compare two commits: it calls the WSGI application (the production settings: DEBUG off, the full
middleware list) in a loop, one new EPN.bz postback at a time (the parameters of bench/postback.lua),
against a private MariaDB with durable commits, and reports

- our CPU per postback: the best and the median of several batches (the best is what the code
  costs; the median shows how noisy the machine was);
- mariadbd's CPU per postback over all batches.

Every answer must be a 200 "created": a faster error is not a result. The postbacks carry the
environment's token (WEBHOOK_TOKENS), or with `--token admin` one issued as in the admin (a NetworkToken
of EPN.bz, known to the process through partners.snapshot): the same postback, the other lookup.

    .venv/bin/python -m bench.cpu_per_postback [--postbacks 4000] [--batches 8] [--token environment|admin]
"""

import argparse
import io
import os
import secrets
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench.run import cpu_seconds, service_environment
from devtools.mariadb import PrivateMariaDB

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postbacks", type=int, default=4000, help="measured postbacks, over all batches")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench" / "cpu")
    parser.add_argument("--token", choices=("environment", "admin"), default="environment",
                        help="which kind of webhook token the postbacks carry")
    return parser.parse_args()


def query_string(tag: str, sequence: int) -> str:
    """The GET parameters bench/postback.lua sends, with a uniq_id unique to this run."""
    return (
        f"click_id=user{sequence % 5000}&order_number=ORD{tag}-{sequence}&uniq_id={tag}-{sequence}"
        "&order_status=waiting&offer_name=AliExpress%20WW&offer_type=ali&offer_id=1&type_id=1"
        "&sub=s1&sub2=s2&sub3=&sub4=&sub5="
        f"&revenue={100 + sequence % 9000}.50&commission_fee={5 + sequence % 400}.25&currency=RUB"
        f"&ip=203.0.113.{sequence % 250 + 1}&ipv6=&user_agent=Mozilla%2F5.0%20(Linux%3B%20Android%2014)"
        "&click_time=2026-11-27%2010%3A00%3A00&time_of_order=2026-11-27%2010%3A05%3A00"
    )


def main() -> int:
    args = parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    db = PrivateMariaDB(args.workdir / "mariadb")
    db.start()
    try:
        db.sql("CREATE DATABASE bench_cpu CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        token = secrets.token_urlsafe(32)
        os.environ.update(service_environment(db.url("bench_cpu"), token, args.workdir))
        # The log line of each postback is part of its cost, so it is written, but to /dev/null: the
        # logging settings bind to sys.stdout when Django starts, and the report goes to the real one.
        report, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115 (closed with the process)
        return measure(args, db, token, report)
    finally:
        db.stop()


def measure(args, db: PrivateMariaDB, token: str, report) -> int:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from partners.models import Network, NetworkToken

    if args.token == "admin":
        _row, token = NetworkToken.issue(Network.objects.get(slug="epn_bz"), label="bench")
    from epnhook.wsgi import application  # as a worker starts: after the token exists, as in production

    tag = secrets.token_hex(4)
    answers: list[str] = []

    def start_response(status, headers, exc_info=None):
        answers.append(status)

    def postback(sequence: int) -> None:
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": f"/webhook/{token}", "QUERY_STRING": query_string(tag, sequence),
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_USER_AGENT": "epn-postback/1.0",
            "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        response = application(environ, start_response)
        body = b"".join(response)
        response.close()
        if answers[-1] != "200 OK" or b'"created"' not in body:
            raise SystemExit(f"postback {sequence} was answered {answers[-1]}: {body[:200]!r}")

    for sequence in range(args.warmup):
        postback(sequence)
    per_batch = args.postbacks // args.batches
    batches = []
    database_before = cpu_seconds(db.process.pid)
    for batch in range(args.batches):
        first = args.warmup + batch * per_batch
        started = time.process_time()
        for sequence in range(first, first + per_batch):
            postback(sequence)
        batches.append((time.process_time() - started) / per_batch * 1000)
    database = (cpu_seconds(db.process.pid) - database_before) / (per_batch * args.batches) * 1000
    print(f"{per_batch * args.batches} postbacks with the {args.token}'s token in {args.batches} batches, "
          "each answered 200 created\n"
          f"our CPU per postback: best {min(batches):.3f} ms, median {statistics.median(batches):.3f} ms\n"
          f"mariadbd CPU per postback: {database:.3f} ms", file=report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
