# The read API: consumers' keys, and the indexes its keyset pages walk (orders.readapi).

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0006_reconciliation'),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('consumer', models.CharField(help_text="Who uses this key, e.g. the cashback site's name.", max_length=100, verbose_name='consumer')),
                ('prefix', models.CharField(editable=False, max_length=16, verbose_name='key starts with')),
                ('key_hash', models.CharField(editable=False, max_length=64, unique=True, verbose_name='key hash (SHA-256)')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name='created')),
                ('revoked_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='revoked')),
                ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='last used')),
            ],
            options={
                'verbose_name': 'API key',
                'verbose_name_plural': 'API keys',
            },
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['is_current', 'updated_at', 'id'], name='order_api_updated'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['is_current', 'partner', 'updated_at', 'id'], name='order_api_partner'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['is_current', 'order_status', 'updated_at', 'id'], name='order_api_status'),
        ),
        migrations.AddIndex(
            model_name='order',
            index=models.Index(fields=['is_current', 'partner', 'order_status', 'updated_at', 'id'], name='order_api_partner_status'),
        ),
    ]
