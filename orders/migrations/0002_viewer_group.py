"""The read-only "viewer" group for staff who look at orders and deliveries and change nothing."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWER_GROUP = "viewer"


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
        migrations.RunPython(create_viewer_group, delete_viewer_group),
    ]
