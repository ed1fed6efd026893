"""manage.py prune_deliveries: what goes, what always stays, batches, --dry-run and the failures."""

import re
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.ingest import ingest
from orders.models import Delivery, Order
from orders.prune import prune_deliveries
from orders.replay import replay_delivery
from partners.epn_bz import EpnBz
from tests.factories import raw_get
from tests.manage_process import assert_clean_failure, manage

pytestmark = pytest.mark.django_db


def prune(*args) -> str:
    out = StringIO()
    call_command("prune_deliveries", *args, stdout=out)
    return out.getvalue()


def delivery(days_old: float, **changes) -> Delivery:
    """Store a postback through the write path, then make it `days_old` days old."""
    result = ingest(raw_get(**changes))
    Delivery.objects.filter(pk=result.delivery_id).update(received_at=timezone.now() - timedelta(days=days_old))
    return Delivery.objects.get(pk=result.delivery_id)


def remaining() -> set[int]:
    return set(Delivery.objects.values_list("pk", flat=True))


def test_old_stored_deliveries_go_recent_ones_and_every_order_stay():
    old_created = delivery(200)
    old_duplicate = delivery(190)
    recent = delivery(10, uniq_id="recent")
    output = prune()
    assert remaining() == {recent.pk}
    assert old_duplicate.outcome == "duplicate" and old_created.outcome == "created"
    assert Order.objects.count() == 2, "orders are never pruned"
    assert re.search(r"deleted 2 deliveries received before \d{4}-\d\d-\d\d \d\d:\d\d MSK in 1 batch", output)


def test_invalid_and_error_deliveries_are_kept_until_a_replay_stores_them(monkeypatch):
    invalid = delivery(400, order_status="paid")
    with monkeypatch.context() as patch:
        patch.setattr(EpnBz, "parse", lambda self, params: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            ingest(raw_get(uniq_id="bug"))
    Delivery.objects.filter(outcome="error").update(received_at=timezone.now() - timedelta(days=400))
    output = prune()
    assert Delivery.objects.filter(outcome__in=["invalid", "error"]).count() == 2
    assert "invalid or error (never stored as an order): 2" in output
    monkeypatch.setitem(EpnBz.statuses, "paid", "completed")
    replay_delivery(invalid)  # the fix is deployed and the delivery replayed
    prune()
    assert not Delivery.objects.filter(pk=invalid.pk).exists()
    assert Order.objects.filter(order_status="completed").exists()


def test_deliveries_of_an_order_under_a_money_conflict_are_kept_until_it_is_settled():
    first = delivery(300, revenue="1500")
    second = delivery(300, revenue="1400")
    assert second.conflict_fields == ["revenue"]
    output = prune()
    assert remaining() == {first.pk, second.pk}
    assert "order under a money conflict: 2" in output
    Order.objects.update(has_conflict=False)  # staff settled it
    prune()
    assert remaining() == set()


def test_deliveries_entered_by_hand_are_kept():
    call_command("replay_webhook", "--partner", "epn_bz", "--query",
                 "click_id=1&order_number=M-1&uniq_id=M-1&order_status=waiting", stdout=StringIO())
    Delivery.objects.update(received_at=timezone.now() - timedelta(days=1000))
    assert "entered by hand: 1" in prune()
    assert Delivery.objects.get().source == "manual"


def test_days_defaults_to_delivery_retention_days(settings):
    settings.DELIVERY_RETENTION_DAYS = 30
    month_old, week_old = delivery(31, uniq_id="a"), delivery(7, uniq_id="b")
    prune()
    assert remaining() == {week_old.pk} and month_old.pk not in remaining()
    prune("--days", "5")
    assert remaining() == set()


def test_dry_run_counts_and_deletes_nothing():
    delivery(200, uniq_id="a")
    delivery(200, uniq_id="b")
    delivery(200, order_status="paid")
    output = prune("--dry-run")
    assert output.startswith("would delete 2 deliveries received before ")
    assert "(dry run: nothing was deleted)" in output and "invalid or error (never stored as an order): 1" in output
    assert Delivery.objects.count() == 3


def test_deletes_in_small_batches_by_primary_key():
    old = [delivery(200, uniq_id=f"old-{number}") for number in range(5)]
    kept = delivery(200, order_status="paid")
    with CaptureQueriesContext(connection) as queries:
        output = prune("--batch-size", "2")
    deletes = [query["sql"] for query in queries if query["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 3 and "in 3 batch(es)" in output
    sizes = []
    for sql in deletes:
        assert "JOIN" not in sql.upper() and "SELECT" not in sql.upper(), "one plain DELETE by primary key"
        in_list = re.search(r"id[\"`] IN \(([^)]*)\)", sql).group(1)
        sizes.append(len(in_list.split(",")))
    assert sizes == [2, 2, 1]
    assert remaining() == {kept.pk} and not {d.pk for d in old} & remaining()


@pytest.mark.parametrize(("args", "message"), [
    (["--days", "0"], "'0' is not a positive whole number"),
    (["--days", "soon"], "'soon' is not a positive whole number"),
    (["--batch-size", "0"], "'0' is not a positive whole number"),
    (["--batch-size", "50000"], "--batch-size above 10000"),
])
def test_bad_options_are_clear_errors(args, message):
    delivery(200)
    with pytest.raises(CommandError, match=message):
        prune(*args)
    assert Delivery.objects.count() == 1


def test_running_again_after_an_interruption_finishes_the_job():
    for number in range(4):
        delivery(200, uniq_id=f"old-{number}")
    report = prune_deliveries(days=180, batch_size=3)
    assert report.deleted == 4 and report.batches == 2
    assert prune_deliveries(days=180).deleted == 0


def test_expected_failures_in_a_real_process_end_without_a_traceback(tmp_path):
    url = f"sqlite:///{tmp_path}/missing/db.sqlite3"
    assert_clean_failure(manage("prune_deliveries", "--days", "-3", database_url=url, var=tmp_path),
                         "not a positive whole number")
    result = manage("prune_deliveries", database_url=url, var=tmp_path)
    assert_clean_failure(result, "CommandError: the database is unreachable")
    assert result.returncode == 1


@pytest.mark.mariadb
@pytest.mark.private_mariadb
def test_an_unreachable_mariadb_is_a_clear_error(stopped_private_mariadb, tmp_path):
    for args in ([], ["--dry-run"]):
        result = manage("prune_deliveries", *args, database_url=stopped_private_mariadb.url(), var=tmp_path)
        assert_clean_failure(result, "CommandError: the database is unreachable: MariaDB error 200")
        assert result.returncode == 1


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_survives_a_connection_closed_by_wait_timeout():
    delivery(200)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION wait_timeout = 1")
    time.sleep(2.5)  # the server drops the idle connection
    assert "deleted 1 deliveries" in prune()
