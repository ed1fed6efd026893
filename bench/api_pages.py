"""Read API speed at scale: on bench/admin_pages.py's data set, time the pages a consumer asks for.

    python -m bench.api_pages --database-url mysql://root@127.0.0.1:3306/epnhook_bench \
        --orders 1000000 [--deliveries 0] [--reuse] [--repeat 5]

The data set is bench/admin_pages.py's (same options, same database rules: a database of its own, emptied
when generated). Each page is requested in-process through Django's test client with an API key; the
time reported is the median server time over --repeat runs after two warm-up requests. The table is
Markdown, with the 50 ms target, followed by MariaDB's plan (EXPLAIN) of each list page's query.
"""

import time
from datetime import timedelta
from urllib.parse import urlencode

from bench.admin_pages import prepare, timings_table

TARGET_MS = 50


def main() -> None:
    args = prepare(__doc__, deliveries=0, repeat=5, deliveries_help="the API reads none; kept to share a data set")
    pages = api_pages()
    print(report(measure(pages, args.repeat), args.orders))
    print(explain(pages))


def api_pages() -> list[tuple[str, str, dict]]:
    """(name, path, query parameters) of each page timed."""
    from orders.models import Order
    from orders.readapi import MAX_LIMIT, encode_cursor

    current = Order.objects.filter(is_current=True)
    middle = current.filter(pk__gte=Order.objects.order_by("-pk").values_list("pk", flat=True)[0] // 2)
    sample = middle.order_by("pk").first()
    newest = current.order_by("-updated_at").values_list("updated_at", flat=True).first()
    deep = {"cursor": encode_cursor(sample.updated_at, sample.pk)}
    rejected = {"partner": sample.partner, "status": "rejected"}
    orders = "/api/v1/orders"
    return [
        ("first page (100 orders)", orders, {}),
        (f"first page of the maximum size ({MAX_LIMIT} orders)", orders, {"limit": MAX_LIMIT}),
        ("a page half-way through the walk (cursor)", orders, deep),
        ("partner and status rejected", orders, rejected),
        ("partner and status rejected, half-way (cursor)", orders, {**rejected, **deep}),
        ("status pending", orders, {"status": "pending"}),
        ("updated_since a year ago", orders, {"updated_since": newest - timedelta(days=365)}),
        ("click_id (a user's orders)", orders, {"click_id": sample.click_id}),
        ("one order with its history", f"{orders}/{sample.partner}/{sample.uniq_id}", {}),
    ]


def measure(pages, repeat: int) -> list[tuple[str, list[float], list[float]]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from orders.readapi import create_key

    _api_key, key = create_key("bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    results = []
    for name, path, params in pages:
        url = f"{path}?{urlencode({k: v.isoformat() if hasattr(v, 'isoformat') else v for k, v in params.items()})}"
        timings, sql_timings = [], []
        for attempt in range(repeat + 2):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{name}: {url} answered {response.status_code} {response.content[:200]!r}")
            if attempt >= 2:
                timings.append(elapsed)
                sql_timings.append(sum(float(query["time"]) for query in queries.captured_queries) * 1000)
        results.append((name, timings, sql_timings))
    return results


def explain(pages) -> str:
    """MariaDB's plan of each list page's query: the index it walks, and that it needs no filesort."""
    from orders import readapi

    lines = ["", "Plans (EXPLAIN) of the list queries:", ""]
    for name, path, params in pages:
        if path == "/api/v1/orders":
            lines += [f"{name}:", "", "    " + readapi.page_query(**params).explain().replace("\n", "\n    "), ""]
    return "\n".join(lines)


def report(results, orders: int) -> str:
    return timings_table(results, f"Read API pages on MariaDB with {orders:,} order rows", TARGET_MS)

if __name__ == "__main__":
    main()
