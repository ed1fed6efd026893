"""The status a delivery's URL implied (a network that calls one URL per event), kept for replay; and an
order's status as sent may be empty, for such a network sends no word.

Both are schema only: the new column is appended with a constant default, which MariaDB adds without
copying the table; the other change is a form rule (blank) that leaves the column as it is.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0004_order_version'),
    ]

    operations = [
        migrations.AddField(
            model_name='delivery',
            name='implied_status',
            field=models.CharField(blank=True, choices=[('waiting', 'waiting (new)'), ('pending', 'pending (on hold)'), ('completed', 'completed (confirmed)'), ('rejected', 'rejected (cancelled)')], max_length=16, verbose_name='status implied by the URL'),
        ),
        migrations.AlterField(
            model_name='order',
            name='original_status',
            field=models.CharField(blank=True, max_length=64, verbose_name='status as sent'),
        ),
    ]
