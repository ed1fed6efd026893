"""The ledger's migrations keep every row: rows written with the schema before a migration, migrated forward.

Run on both databases; CI's MariaDB pass is where it counts (its ALTER TABLEs and JSON column are
production's).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

# The migration that moved EPN.bz's columns into Order.extras and added original_status.
LEDGER_FOR_EVERY_NETWORK = ("orders", "0003_ledger_for_every_network")
RECEIVED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def migrator():
    """A migration executor; the database is migrated to the latest state again afterwards, whatever happens."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    yield executor
    executor = MigrationExecutor(connection)
    executor.migrate(latest)


def migrate(executor: MigrationExecutor, targets) -> MigrationExecutor:
    executor.migrate(targets)
    executor.loader.build_graph()  # what is applied now
    return executor


def test_ledger_for_every_network_keeps_every_row_flag_and_value(migrator):
    before = sorted(parent.key for parent in migrator.loader.graph.node_map[LEDGER_FOR_EVERY_NETWORK].parents)
    migrate(migrator, before)
    Old = migrator.loader.project_state(before).apps.get_model("orders", "Order")

    def old_row(uniq_id, status, *, minutes, payload_status, **values):
        payload = {"uniq_id": uniq_id, "order_status": payload_status} if payload_status is not None else {}
        return Old.objects.create(
            partner="epn_bz", uniq_id=uniq_id, order_number=f"SHOP-{uniq_id}", click_id="user-1", order_status=status,
            revenue=Decimal("1500.50"), commission_fee=Decimal("0.000000001"), currency="TON", raw_payload=payload,
            created_at=RECEIVED + timedelta(minutes=minutes), **values,
        )

    # One order through three statuses (the late pending is not current), with ePN's own columns set.
    waiting = old_row("EPN-1", "waiting", minutes=0, payload_status="waiting", is_current=False,
                      type_id=2, offer_type="aliexpress", ipv6="2001:db8::1")
    completed = old_row("EPN-1", "completed", minutes=5, payload_status=" Approved ", is_current=True,
                        has_conflict=True, type_id=2, offer_type="aliexpress")
    pending = old_row("EPN-1", "pending", minutes=9, payload_status="HOLD", is_current=False)
    # No status word in the payload (a hand-made row): the stored status stands for it.
    bare = old_row("EPN-2", "rejected", minutes=1, payload_status=None, is_current=True, type_id=None, offer_type="")
    stamps = dict(Old.objects.values_list("pk", "updated_at"))

    migrate(migrator, [LEDGER_FOR_EVERY_NETWORK])
    New = migrator.loader.project_state([LEDGER_FOR_EVERY_NETWORK]).apps.get_model("orders", "Order")
    rows = {row.pk: row for row in New.objects.all()}
    assert sorted(rows) == sorted([waiting.pk, completed.pk, pending.pk, bare.pk])
    expected = {
        waiting.pk: ("waiting", "waiting", False, False,
                     {"type_id": 2, "offer_type": "aliexpress", "ipv6": "2001:db8::1"}),
        completed.pk: ("completed", "Approved", True, True, {"type_id": 2, "offer_type": "aliexpress"}),
        pending.pk: ("pending", "HOLD", False, False, {}),
        bare.pk: ("rejected", "rejected", True, False, {}),
    }
    for pk, (status, as_sent, current, conflict, extras) in expected.items():
        row = rows[pk]
        assert (row.order_status, row.original_status, row.is_current, row.has_conflict, row.extras) == (
            status, as_sent, current, conflict, extras), pk
        assert (row.revenue, row.commission_fee, row.currency) == (Decimal("1500.50"), Decimal("0.000000001"), "TON")
        assert row.updated_at == stamps[pk]  # reshaping the ledger is no change of the order
    assert type(rows[waiting.pk].extras["type_id"]) is int
    columns = {column.name for column in connection.introspection.get_table_description(
        connection.cursor(), New._meta.db_table)}
    assert {"original_status", "extras"} <= columns and not {"type_id", "offer_type", "ipv6"} & columns

    # And back: the values return to their columns.
    migrate(migrator, before)
    back = {row.pk: row for row in Old.objects.all()}
    assert (back[waiting.pk].type_id, back[waiting.pk].offer_type, back[waiting.pk].ipv6) == (
        2, "aliexpress", "2001:db8::1")
    assert (back[pending.pk].type_id, back[pending.pk].offer_type, back[pending.pk].ipv6) == (None, "", None)
    assert [row.is_current for row in sorted(back.values(), key=lambda row: row.pk)] == [False, True, False, True]
