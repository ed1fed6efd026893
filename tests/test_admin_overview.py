"""The overview page (orders.overview, orders.summary, orders.views.overview): its figures against the
ledger, its access, its health marks against check_health, and its speed-keeping summary under
concurrent postbacks."""

import json
from collections import defaultdict
from datetime import UTC, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.utils import timezone

from orders import summary
from orders.ingest import ingest
from orders.models import DailySummary, Order
from orders.rawrequest import RawRequest
from tests.admin_helpers import make_admin
from tests.factories import postback

pytestmark = pytest.mark.django_db

STATUSES = ("waiting", "pending", "completed", "rejected")


def epn(uniq_id, status, *, days_ago=0, commission="10.00", currency="RUB", minutes=0):
    received = timezone.now() - timedelta(days=days_ago, minutes=minutes)
    query = urlencode(postback(uniq_id=uniq_id, order_number=f"SHOP-{uniq_id}", order_status=status,
                               commission_fee=commission, currency=currency))
    return ingest(RawRequest(partner="epn_bz", method="GET", query_string=query, received_at=received))


def admitad(action_id, status, *, ready=False, days_ago=0, payment="5.00"):
    from tests.test_partner_admitad import FULL

    params = {**FULL, "admitad_id": action_id, "order_id": f"A-{action_id}", "payment_status": status,
              "payment_sum": payment, "reward_ready": "1" if ready else "0"}
    received = timezone.now() - timedelta(days=days_ago)
    return ingest(RawRequest(partner="admitad", method="GET", query_string=urlencode(params), received_at=received))


def ledger_truth():
    """A direct SQL aggregate over the ledger's current rows: {(day, partner, currency, status, ready):
    (orders, commission)}, each order on the (TIME_ZONE) day of its first row."""
    table = connection.ops.quote_name(Order._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.partner, c.currency, c.order_status, c.commission_fee, c.extras, f.first_at FROM {table} c"
            f" JOIN (SELECT partner, uniq_id, MIN(created_at) AS first_at FROM {table} GROUP BY partner, uniq_id) f"
            " ON f.partner = c.partner AND f.uniq_id = c.uniq_id WHERE c.is_current = %s", [True])
        rows = cursor.fetchall()
    truth = defaultdict(lambda: [0, Decimal(0)])
    for partner, currency, status, commission, extras, first_at in rows:
        if isinstance(first_at, str):  # SQLite hands back text
            first_at = Order._meta.get_field("created_at").to_python(first_at)
        if timezone.is_naive(first_at):  # MariaDB's naive UTC
            first_at = first_at.replace(tzinfo=UTC)
        ready = (json.loads(extras) if isinstance(extras, str) else extras).get("reward_ready") is True
        key = (summary.local_day(first_at), partner, currency, status, ready)
        truth[key][0] += 1
        truth[key][1] += Decimal(commission or 0)
    return {key: (count, total) for key, (count, total) in truth.items()}


def summarised():
    return {(row.day, row.partner, row.currency, row.order_status, row.reward_ready): (row.orders, row.commission)
            for row in DailySummary.objects.all()}


def test_smoke(client):
    epn("E1", "waiting", days_ago=3)
    epn("E1", "completed", days_ago=1)
    epn("E2", "pending", days_ago=2, currency="USD", commission="1.25")
    admitad("A1", "approved", ready=True, days_ago=1)
    summary.refresh()
    assert summarised() == ledger_truth()
    client.force_login(make_admin())
    response = client.get("/admin/")
    assert response.status_code == 200
    open("/tmp/i16b/overview.html", "w").write(response.content.decode())
