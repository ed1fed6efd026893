"""Admin support: the denormalised current-status flag (with its backfill), list indexes, the viewer group."""

from itertools import groupby

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

FINAL_STATUSES = ("completed", "rejected")  # frozen copy of partners.base.FINAL_STATUSES
VIEWER_GROUP = "viewer"


def backfill_is_current(apps, schema_editor):
    """Flag the current row of every existing order with the rule of orders.current.rank."""
    Order = apps.get_model("orders", "Order")
    rows = (
        Order.objects.order_by("partner", "uniq_id")
        .values_list("partner", "uniq_id", "order_status", "created_at", "pk")
        .iterator(chunk_size=5000)
    )
    batch = []
    for _key, group in groupby(rows, key=lambda row: (row[0], row[1])):
        batch.append(max(group, key=lambda row: (row[2] in FINAL_STATUSES, row[3], row[4]))[4])
        if len(batch) >= 1000:
            Order.objects.filter(pk__in=batch).update(is_current=True)
            batch = []
    if batch:
        Order.objects.filter(pk__in=batch).update(is_current=True)


def create_viewer_group(apps, schema_editor):
    """A group that may look at orders and deliveries and change nothing."""
    # Permissions are normally created after all migrations ran; create ours now to attach them.
    orders_config = apps.get_app_config("orders")
    orders_config.models_module = True
    create_permissions(orders_config, apps=apps, verbosity=0)
    orders_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _created = Group.objects.get_or_create(name=VIEWER_GROUP)
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label="orders", codename__in=["view_order", "view_delivery"])
    )


def delete_viewer_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=VIEWER_GROUP).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0001_initial'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.AddField(
            model_name='order',
            name='is_current',
            field=models.BooleanField(default=False, verbose_name='current'),
        ),
        migrations.RunPython(backfill_is_current, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='delivery',
            index=models.Index(fields=['source', 'received_at'], name='delivery_source_received'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['order_status', 'created_at'], name='order_status_created'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['is_current', 'created_at'], name='order_current_created'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['has_conflict', 'created_at'], name='order_conflict_created'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['currency', 'created_at'], name='order_currency_created'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['type_id', 'created_at'], name='order_type_created'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['partner', 'created_at'], name='order_partner_created'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['time_of_order'], name='order_time_of_order'),
        ),
        migrations.RunPython(create_viewer_group, delete_viewer_group),
    ]
