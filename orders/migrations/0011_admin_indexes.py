from django.db import migrations, models


class Migration(migrations.Migration):
    """The order list's indexes for combined filters (see Order.Meta.indexes); one replaces an index that
    was its prefix, so a postback writes one index more than before."""

    dependencies = [
        ("orders", "0010_viewers_see_events"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="order", name="order_partner_status"),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["partner", "order_status", "created_at"], name="order_partner_status_created"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["currency", "order_status", "created_at"], name="order_currency_status_created"),
        ),
    ]
