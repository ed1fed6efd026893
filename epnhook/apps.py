from django.contrib.admin.apps import AdminConfig


class EpnhookAdminConfig(AdminConfig):
    """django.contrib.admin with the project's site (epnhook.admin) as the default `admin.site`."""

    default_site = "epnhook.admin.EpnhookAdminSite"
