"""One ledger for every network: the status word as sent, and each network's own values in `extras`.

EPN.bz's type_id, offer_type and ipv6 columns (and the index on type_id) make way for Order.extras,
which holds the values any network sends beyond the common fields. The data step keeps every row and
its flags (is_current, has_conflict, updated_at): it only copies those three columns into extras and
fills original_status with the word the network sent, as the first delivery's payload holds it.
order_number may be blank (an Admitad lead has none); its column was and stays NOT NULL.
Reversible: going back moves the values into their columns again (another network's extras have no
column and are dropped).
"""

from django.db import migrations, models

import orders.fields

# Rows read and written per query: memory holds one batch, never the table.
BATCH = 1000
EPN_EXTRAS = ("type_id", "offer_type", "ipv6")
# As partners.base.STATUS_WORD_LENGTH was when this was written; a migration does not follow later code.
STATUS_WORD_LENGTH = 64


def _batches(queryset):
    """The rows of `queryset` in primary-key order, BATCH at a time (keyset pagination)."""
    queryset = queryset.order_by("pk")
    last = 0
    while batch := list(queryset.filter(pk__gt=last)[:BATCH]):
        yield batch
        last = batch[-1].pk


def status_as_sent(order) -> str:
    """The status word of the order's first delivery, stripped, or the stored status if it has none."""
    payload = order.raw_payload if isinstance(order.raw_payload, dict) else {}
    word = payload.get("order_status")
    word = word.strip() if isinstance(word, str) else ""
    return word if word and len(word) <= STATUS_WORD_LENGTH else order.order_status


def move_into_extras(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    for batch in _batches(Order.objects.only("pk", "order_status", "raw_payload", *EPN_EXTRAS)):
        for order in batch:
            order.original_status = status_as_sent(order)
            values = {name: getattr(order, name) for name in EPN_EXTRAS}
            order.extras = {name: value for name, value in values.items() if value not in (None, "")}
        Order.objects.bulk_update(batch, ["original_status", "extras"])


def move_out_of_extras(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    for batch in _batches(Order.objects.only("pk", "extras")):
        for order in batch:
            extras = order.extras if isinstance(order.extras, dict) else {}
            order.type_id = extras.get("type_id")
            order.offer_type = extras.get("offer_type", "")
            order.ipv6 = extras.get("ipv6")
        Order.objects.bulk_update(batch, list(EPN_EXTRAS))


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0002_viewer_group"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="original_status",
            field=models.CharField(default="", max_length=STATUS_WORD_LENGTH, verbose_name="status as sent"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="order",
            name="extras",
            field=models.JSONField(blank=True, default=dict, verbose_name="network's own values"),
        ),
        migrations.RunPython(move_into_extras, move_out_of_extras),
        migrations.RemoveIndex(model_name="order", name="order_type_created"),
        migrations.RemoveField(model_name="order", name="type_id"),
        migrations.RemoveField(model_name="order", name="offer_type"),
        migrations.RemoveField(model_name="order", name="ipv6"),
        migrations.AlterField(
            model_name="order",
            name="order_number",
            field=orders.fields.ExactCharField(blank=True, max_length=255, verbose_name="order number"),
        ),
        migrations.AlterField(
            model_name="order",
            name="currency",
            field=models.CharField(default="RUB", max_length=3, verbose_name="currency"),
        ),
    ]
