"""The read-only viewer group sees the events sent to the site and their attempts, as it sees the orders
they tell about: staff answering "did the site get it?" need no more than that. Resending stays with
staff who may change events."""

from importlib import import_module

from django.db import migrations

grant_viewers = import_module("orders.migrations.0006_reconciliation").grant_viewers


def let_viewers_see_events(apps, schema_editor):
    grant_viewers(apps, "view_outboundevent", "view_outboundattempt")


class Migration(migrations.Migration):

    dependencies = [
        ("orders", "0009_overview"),
    ]

    operations = [
        migrations.RunPython(let_viewers_see_events, migrations.RunPython.noop),
    ]
