from django.db import migrations, models


def replace(name: str, fields: list[str]) -> list:
    """The index `name`, rebuilt over `fields`: an index cannot be altered in place."""
    return [
        migrations.RemoveIndex(model_name="order", name=name),
        migrations.AddIndex(model_name="order", index=models.Index(fields=fields, name=name)),
    ]


class Migration(migrations.Migration):
    """The order list's indexes for combined filters (see Order.Meta.indexes). The time-ordered indexes of
    the order list's filters end with is_current; (partner, order_status) becomes (partner, order_status,
    created_at, is_current); (currency, order_status, created_at, is_current) is new. A postback writes one
    index more than before."""

    dependencies = [
        ("orders", "0006_reconciliation"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="order", name="order_partner_status"),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["partner", "order_status", "created_at", "is_current"],
                               name="order_partner_status_created"),
        ),
        migrations.AddIndex(
            model_name="order",
            index=models.Index(fields=["currency", "order_status", "created_at", "is_current"],
                               name="order_currency_status_created"),
        ),
        *replace("order_status_created", ["order_status", "created_at", "is_current"]),
        *replace("order_currency_created", ["currency", "created_at", "is_current"]),
        *replace("order_partner_created", ["partner", "created_at", "is_current"]),
    ]
