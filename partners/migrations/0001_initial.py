"""Every network the service knows (built-in ones get their row after migrate), and the webhook tokens issued
in the admin, stored as their SHA-256."""

import django.core.validators
import django.db.models.deletion
import django.utils.timezone
import re
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Network',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('slug', models.CharField(help_text="The network's name in the ledger (every order and delivery carries it): lower-case letters, digits and _, up to 32. It cannot change once the network has sent a postback.", max_length=32, unique=True, validators=[django.core.validators.RegexValidator(re.compile('\\A[a-z0-9_]{1,32}\\Z'), 'a-z, 0-9 and _ only.')], verbose_name='slug')),
                ('name', models.CharField(max_length=100, verbose_name='name')),
                ('built_in', models.BooleanField(default=False, editable=False, verbose_name='built in')),
                ('uniq_id_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='unique id')),
                ('click_id_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='click id (user)')),
                ('status_parameter', models.CharField(blank=True, help_text="The parameter that carries the network's status word. Empty for a network that calls one URL per event (such as ActionPay): then each of its tokens says which status its URL means.", max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='status')),
                ('order_number_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='order number')),
                ('revenue_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='revenue')),
                ('commission_fee_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='commission')),
                ('currency_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='currency')),
                ('offer_id_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='offer id')),
                ('offer_name_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='offer name')),
                ('sub_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='sub')),
                ('sub2_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='sub2')),
                ('sub3_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='sub3')),
                ('sub4_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='sub4')),
                ('sub5_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='sub5')),
                ('ip_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='click IP')),
                ('user_agent_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='click user agent')),
                ('click_time_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='click time')),
                ('time_of_order_parameter', models.CharField(blank=True, max_length=64, validators=[django.core.validators.RegexValidator(re.compile('\\A[A-Za-z0-9_.~-]{1,64}\\Z'), 'Letters, digits and _ . ~ - only.')], verbose_name='time of order')),
                ('waiting_words', models.TextField(blank=True, help_text="The network's words for this status, comma-separated; case is ignored.", verbose_name='words for waiting (new)')),
                ('pending_words', models.TextField(blank=True, help_text="The network's words for this status, comma-separated; case is ignored.", verbose_name='words for pending (on hold)')),
                ('completed_words', models.TextField(blank=True, help_text="The network's words for this status, comma-separated; case is ignored.", verbose_name='words for completed (confirmed)')),
                ('rejected_words', models.TextField(blank=True, help_text="The network's words for this status, comma-separated; case is ignored.", verbose_name='words for rejected (cancelled)')),
                ('timezone', models.CharField(default='Europe/Moscow', help_text='The zone of times sent without an offset, such as Europe/Moscow or UTC.', max_length=64, verbose_name='time zone')),
                ('date_format', models.CharField(choices=[('ymd', 'YYYY-MM-DD HH:MM:SS'), ('dmy', 'DD.MM.YYYY HH:MM:SS'), ('iso8601', 'ISO 8601 with an offset (2026-03-01T12:30:00+03:00)'), ('unix', 'Unix seconds (1772357400)'), ('any', 'any of these')], default='any', max_length=16, verbose_name='date format')),
                ('decimal_separator', models.CharField(choices=[('.', '.'), (',', ',')], default='.', max_length=1, verbose_name='decimal separator')),
                ('default_currency', models.CharField(blank=True, help_text='The currency of a postback that names none, such as RUB. Empty: the currency parameter is required.', max_length=3, verbose_name='default currency')),
                ('macro', models.CharField(choices=[('{name}', '{name}'), ('[[[name]]]', '[[[name]]]'), ('{{name}}', '{{name}}'), ('%name%', '%name%'), ('$name', '$name'), ('none', 'none: the network appends its own parameters')], default='{name}', help_text="How the network's dashboard writes a macro: the URL to paste holds parameter=macro for every mapped parameter.", max_length=16, verbose_name='macro syntax')),
            ],
            options={
                'verbose_name': 'partner network',
                'verbose_name_plural': 'partner networks',
                'ordering': ('-built_in', 'name'),
            },
        ),
        migrations.CreateModel(
            name='NetworkToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('digest', models.CharField(editable=False, max_length=64, unique=True, verbose_name='hash')),
                ('casefolded_digest', models.CharField(editable=False, max_length=64, verbose_name='hash in lower case')),
                ('implied_status', models.CharField(blank=True, choices=[('waiting', 'waiting (new)'), ('pending', 'pending (on hold)'), ('completed', 'completed (confirmed)'), ('rejected', 'rejected (cancelled)')], help_text="For a network that calls one URL per event (ActionPay: created, accepted, rejected): the status that a postback to this token's URL has.", max_length=16, verbose_name='status implied by the URL')),
                ('label', models.CharField(blank=True, help_text='What the token is for, such as the event its URL is given for.', max_length=64, verbose_name='label')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False, verbose_name='created')),
                ('revoked_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='revoked')),
                ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='last used')),
                ('network', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tokens', to='partners.network', verbose_name='partner network')),
            ],
            options={
                'verbose_name': 'webhook token',
                'verbose_name_plural': 'webhook tokens',
                'ordering': ('created_at', 'pk'),
            },
        ),
    ]
