"""Admin speed at scale: load a million orders and two million deliveries, then time the pages staff use.

    python -m bench.admin_pages --database-url mysql://root@127.0.0.1:3306/epnhook_bench \
        --orders 1000000 --deliveries 2000000 [--reuse] [--repeat 15]

The data goes into the database named in --database-url, which the script creates and migrates; it must
be a database of its own, because generating empties the order and delivery tables first. With --reuse
an existing data set of the requested size is kept. Rows are written with multi-row INSERTs in
arrival order (ids and timestamps ascending), the way production fills the tables.

Each page is requested in-process through Django's test client, as a logged-in superuser; the time
reported is the median server time (URL routing, queries, template rendering) over --repeat runs,
after two warm-up requests. The table is Markdown, with the 300 ms target.
"""

import argparse
import json
import os
import random
import secrets
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode, urlsplit

TARGET_MS = 300
BATCH = 5000
# Each order key goes through one of these status histories, in arrival order. The last two arrive
# out of order: the final status first, a stale non-final one after it.
HISTORIES = (
    ("waiting",),
    ("waiting", "pending"),
    ("waiting", "completed"),
    ("waiting", "pending", "completed"),
    ("waiting", "rejected"),
    ("completed", "waiting"),
    ("rejected", "pending"),
)
CURRENCIES = ("RUB",) * 90 + ("USD",) * 6 + ("EUR",) * 3 + ("TON",)
# Filter combinations of the order list that staff use (query parameters); the current-status view is
# the default, so "current" is every one without rows=events.
COMBINATIONS = (
    ("current + USD", {"currency__exact": "USD"}),
    ("completed + TON", {"order_status__exact": "completed", "currency__exact": "TON"}),
    ("network + rejected + current", {"partner": "epn_bz", "order_status__exact": "rejected"}),
    ("network + completed + RUB", {"partner": "epn_bz", "order_status__exact": "completed", "currency__exact": "RUB"}),
    ("conflict + waiting", {"has_conflict__exact": "1", "order_status__exact": "waiting"}),
    ("status events: pending + EUR", {"rows": "events", "order_status__exact": "pending", "currency__exact": "EUR"}),
)
# What a list says when a query hit ADMIN_QUERY_TIMEOUT (orders.listquery): such a page is marked.
TIMED_OUT_MARK = b'id="query-timed-out"'


def main() -> None:
    args = prepare(__doc__, deliveries=2_000_000, repeat=15)
    summarise()
    print(report(measure(args.repeat), args.orders, args.deliveries))


def prepare(doc: str, *, deliveries: int, repeat: int, deliveries_help: str | None = None) -> argparse.Namespace:
    """Read a page benchmark's command line (its defaults given), set Django up on that MariaDB database,
    migrate it, and generate the data set unless --reuse finds it at the requested size."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--database-url", required=True, help="mysql://user@host:port/database, a database of its own")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=deliveries, help=deliveries_help)
    parser.add_argument("--reuse", action="store_true", help="keep existing data if it has the requested size")
    parser.add_argument("--repeat", type=int, default=repeat, help="timed requests per page")
    args = parser.parse_args()
    if not args.database_url.startswith("mysql://"):
        parser.error("--database-url must be a mysql:// URL: the numbers only mean something on MariaDB")
    configure_django(args.database_url)

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.reuse and data_size() == (args.orders, args.deliveries):
        print(f"reusing {args.orders} orders and {args.deliveries} deliveries", file=sys.stderr)
    else:
        generate(args.orders, args.deliveries)
    return args


def configure_django(database_url: str) -> None:
    """Point the project's settings at the bench database; the .env of the checkout is not read."""
    create_database(database_url)
    os.environ.update({
        "ENV_FILE": "",
        "DATABASE_URL": database_url,
        "DEBUG": "False",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "False",
        # A full-table statement on a cold cache may exceed the request-sized default.
        "DATABASE_READ_TIMEOUT": "0",
        # A token, so that the overview shows (and checks) EPN.bz's last postback and postbacks per hour.
        "WEBHOOK_SECRET_TOKEN": secrets.token_urlsafe(32),
    })
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "epnhook.settings")
    # WhiteNoise warns that collectstatic has not run; static files are not what is measured.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    import django

    django.setup()


def create_database(database_url: str) -> None:
    import MySQLdb

    url = urlsplit(database_url)
    name = url.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"unexpected database name {name!r}")
    connection = MySQLdb.connect(
        host=url.hostname, port=url.port or 3306, user=url.username or "root", password=url.password or ""
    )
    try:
        connection.cursor().execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    finally:
        connection.close()


def data_size() -> tuple[int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT COUNT(*) FROM orders_order), (SELECT COUNT(*) FROM orders_delivery)")
        return tuple(cursor.fetchone())


# --- data ---------------------------------------------------------------------------------------


def generate(orders: int, deliveries: int) -> None:
    from django.db import connection

    from orders.models import DailySummary, Delivery, Order

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        cursor.execute(f"TRUNCATE TABLE {Delivery._meta.db_table}")
        cursor.execute(f"TRUNCATE TABLE {Order._meta.db_table}")
        cursor.execute(f"TRUNCATE TABLE {DailySummary._meta.db_table}")
        insert_rows(cursor, Order, order_rows(orders))
        print(f"{orders} orders in {time.monotonic() - started:.0f} s", file=sys.stderr)
        insert_rows(cursor, Delivery, delivery_rows(orders, deliveries))
        cursor.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")
        cursor.execute(f"ANALYZE TABLE {Order._meta.db_table}, {Delivery._meta.db_table}")
        cursor.fetchall()
    print(f"data generated in {time.monotonic() - started:.0f} s", file=sys.stderr)


def insert_rows(cursor, model, rows) -> None:
    columns = [field.column for field in model._meta.concrete_fields]
    statement = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    )
    batch = []
    for row in rows:
        batch.append([row[column] for column in columns])
        if len(batch) == BATCH:
            cursor.executemany(statement, batch)  # mysqlclient sends one multi-row INSERT
            batch = []
    if batch:
        cursor.executemany(statement, batch)


def _timestamps(count: int):
    """Arrival times spread over two years up to now, ascending, as naive UTC for the driver."""
    start = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=730)
    step = timedelta(days=730) / max(count, 1)
    return (start + step * number for number in range(count))


def order_rows(count: int):
    rng = random.Random(4)
    times = _timestamps(count)
    row_id = 0
    key = 0
    while row_id < count:
        key += 1
        history = HISTORIES[key % len(HISTORIES)][: count - row_id]
        ranks = [(status in ("completed", "rejected"), position) for position, status in enumerate(history)]
        current = ranks.index(max(ranks))
        currency = CURRENCIES[key % len(CURRENCIES)]
        revenue = Decimal(rng.randrange(100, 5_000_000)) / 100
        for position, status in enumerate(history):
            row_id += 1
            created = next(times)
            params = {
                "click_id": f"user-{key % 50_000}", "order_number": f"SHOP-{key:09d}", "uniq_id": f"EPN-{key:09d}",
                "order_status": status, "revenue": str(revenue), "commission_fee": str(revenue / 10),
                "currency": currency, "offer_name": "AliExpress", "offer_id": "1", "type_id": "1",
            }
            yield {
                "id": row_id, "partner": "epn_bz", "uniq_id": params["uniq_id"], "uniq_id_derived": False,
                "order_number": params["order_number"], "click_id": params["click_id"], "order_status": status,
                "original_status": status, "offer_name": "AliExpress", "offer_id": "1",
                "sub": "", "sub2": "", "sub3": "", "sub4": "", "sub5": "",
                "revenue": revenue, "commission_fee": revenue / 10, "currency": currency,
                "ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (bench)",
                "click_time": created - timedelta(hours=1), "time_of_order": created - timedelta(minutes=5),
                "extras": '{"type_id": 1}', "raw_payload": json.dumps(params), "has_conflict": key % 997 == 0,
                "is_current": position == current, "created_at": created, "updated_at": created,
                "conflict_reviewed_at": None, "conflict_reviewed_by": "",
            }


def delivery_rows(orders: int, count: int):
    """Deliveries cycle over the orders: the first one of an order `created` it, later ones are duplicates;
    every hundredth delivery is an invalid request with no order."""
    times = _timestamps(count)
    for row_id in range(1, count + 1):
        order_id = (row_id - 1) % orders + 1
        invalid = row_id % 100 == 0
        outcome = "invalid" if invalid else ("created" if row_id <= orders else "duplicate")
        yield {
            "id": row_id, "partner": "epn_bz", "source": "spool" if row_id % 1000 == 0 else "http", "method": "GET",
            "query_string": f"click_id=user-1&order_number=SHOP-{order_id:09d}&uniq_id=EPN-{order_id:09d}"
                            "&order_status=waiting&revenue=1500&commission_fee=150",
            "body": b"", "content_type": "", "remote_addr": "198.51.100.20", "user_agent": "EPN postback",
            "headers": '{"Accept": "*/*"}', "received_at": next(times), "outcome": outcome,
            "error": "revenue 'x' is not a plain non-negative number like 1500.50" if invalid else "",
            "error_field": "revenue" if invalid else "", "order_id": None if invalid else order_id,
            "conflict_fields": "[]", "spool_id": None, "processed_at": datetime(2026, 1, 1), "replayed_at": None,
            "implied_status": "", "reconcile_run_id": None,
        }


def summarise() -> None:
    """Bring the overview's daily summary up to date: all of it after generating (the bulk INSERTs bypass
    orders.summary's watermark, so the summary state is reset first), or the changed days of a reused set."""
    from orders import summary
    from orders.models import DailySummary, SummaryState

    started = time.monotonic()
    if not DailySummary.objects.exists():
        SummaryState.objects.all().delete()
    report = summary.refresh()
    print(f"daily summary: {report.days} days recomputed in {time.monotonic() - started:.0f} s", file=sys.stderr)


# --- measurement --------------------------------------------------------------------------------


def measure(repeat: int) -> list[tuple[str, str, list[float]]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings
    from django.urls import reverse
    from django.utils import timezone

    from orders.models import Order

    # Static file URLs need the manifest that collectstatic writes; the bench measures pages, not assets.
    override_settings(STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }).enable()

    user, _created = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    middle = Order.objects.filter(pk__gte=Order.objects.order_by("-pk").values_list("pk", flat=True)[0] // 2)
    sample = middle.order_by("pk").first()
    order_list = reverse("admin:orders_order_changelist")
    # A month half a year back, well inside the two years of data.
    month_start = (timezone.localdate() - timedelta(days=182)).replace(day=1)
    month = {"created_at__from": month_start.isoformat(),
             "created_at__to": (month_start + timedelta(days=31)).replace(day=1) - timedelta(days=1)}
    # Matches a tenth of the order keys (EPN-000100000 to EPN-000199999).
    many_prefix = "EPN-0001"
    pages = [
        ("order list, default first page (orders at their current status)", order_list),
        ("order list, current status completed", f"{order_list}?{urlencode({'order_status__exact': 'completed'})}"),
        ("order list, current status waiting", f"{order_list}?{urlencode({'order_status__exact': 'waiting'})}"),
        ("order list, currency TON (1 %)", f"{order_list}?{urlencode({'currency__exact': 'TON'})}"),
        ("order list of status events", f"{order_list}?{urlencode({'rows': 'events'})}"),
        ("order list searched by exact uniq_id", f"{order_list}?{urlencode({'q': sample.uniq_id})}"),
        ("order detail page", reverse("admin:orders_order_change", args=[sample.pk])),
        ("delivery list", reverse("admin:orders_delivery_changelist")),
        ("overview (the admin's front page), 30 days", reverse("overview")),
        ("overview, 90 days", f"{reverse('overview')}?days=90"),
        # Combinations of filters, which no single-column index serves (the list).
        *((f"combination: {name}", url_of("admin:orders_order_changelist", query)) for name, query in COMBINATIONS),
        ("combination: status + date range (a month)",
         url_of("admin:orders_order_changelist", {"order_status__exact": "completed", **month})),
        ("combination: network + a month of the date hierarchy", url_of("admin:orders_order_changelist", {
            "partner": "epn_bz", "created_at__year": month_start.year, "created_at__month": month_start.month})),
        ("search: an order-number prefix matching 10 % of orders",
         url_of("admin:orders_order_changelist", {"q": many_prefix})),
        ("search: that prefix + currency USD",
         url_of("admin:orders_order_changelist", {"q": many_prefix, "currency__exact": "USD"})),
        ("totals: completed + TON",
         url_of("admin:orders_order_totals", {"order_status__exact": "completed", "currency__exact": "TON"})),
        ("totals: current + USD + a month", url_of("admin:orders_order_totals", {"currency__exact": "USD", **month})),
        ("CSV export: USD + a month (whole file)",
         url_of("admin:orders_order_export", {"currency__exact": "USD", **month})),
        ("postbacks: invalid + network",
         url_of("admin:orders_delivery_changelist", {"outcome__exact": "invalid", "partner": "epn_bz"})),
        ("postbacks: network + a month", url_of("admin:orders_delivery_changelist", {
            "partner": "epn_bz", "received_at__from": month["created_at__from"],
            "received_at__to": month["created_at__to"]})),
    ]
    results, timed_out = [], set()
    for name, url in pages:
        timings, sql_timings = [], []
        for attempt in range(repeat + 2):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                if response.streaming:  # the CSV: its queries run as it is read
                    b"".join(response.streaming_content)
                elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{name}: {url} answered {response.status_code}")
            if not response.streaming and TIMED_OUT_MARK in response.content:
                timed_out.add(name)
            if attempt >= 2:
                timings.append(elapsed)
                sql_timings.append(sum(float(query["time"]) for query in queries.captured_queries) * 1000)
        results.append((f"{name} (TIMED OUT: the page said so)" if name in timed_out else name, timings, sql_timings))
    return results


def url_of(name: str, query: dict) -> str:
    from django.urls import reverse

    return f"{reverse(name)}?{urlencode(query)}"


def report(results, orders: int, deliveries: int) -> str:
    return timings_table(results, f"Admin pages on MariaDB with {orders:,} orders and {deliveries:,} deliveries",
                         TARGET_MS)


def timings_table(results, heading: str, target_ms: float) -> str:
    """A Markdown table of (page name, server times, SQL times) under `heading`, each median against
    `target_ms` (bench/api_pages.py reports its pages with it too)."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [
        f"{heading} (median of {len(results[0][1])} requests, server time in process; load average {load}):",
        "",
        "| page | median ms | of which SQL ms | max ms | target ms | result |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, timings, sql_timings in results:
        median = statistics.median(timings)
        verdict = "ok" if median < target_ms else "TOO SLOW"
        lines.append(
            f"| {name} | {median:.1f} | {statistics.median(sql_timings):.1f} | {max(timings):.1f} | {target_ms} "
            f"| {verdict} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
