"""The project's admin site: Django's, with the sidebar and the index ordered for the people who use it.

Staff open the admin for the ledger, so it comes first; the networks' setup next; the accounts after;
Axes' access logs, which only a superuser acts on, last and for superusers only (a staff member given
the axes permissions still does not see them: the logs hold the addresses and user names of failed
logins).
"""

from django.contrib import admin

# The app list's order: (app label, its models' object names in order). An app or a model not named
# here follows the named ones, in Django's alphabetical order. A page that belongs at the top (such
# as an overview) goes first in this table.
SECTIONS = (
    ("orders", ("Order", "Delivery", "ReconcileRun")),
    ("partners", ("Network", "NetworkToken")),
    ("auth", ("User", "Group")),
    ("axes", ()),
)
# Apps that only superusers see, whatever permissions a staff member holds.
SUPERUSER_APPS = {"axes"}


class EpnhookAdminSite(admin.AdminSite):
    site_header = site_title = "epnhook"
    site_url = None  # there is no public site to link to

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if not request.user.is_superuser:
            apps = [app for app in apps if app["app_label"] not in SUPERUSER_APPS]
        return sorted((_ordered_models(app) for app in apps), key=_app_position)


def _position(names, name) -> int:
    return names.index(name) if name in names else len(names)


def _app_position(app) -> int:
    return _position([label for label, _models in SECTIONS], app["app_label"])


def _ordered_models(app):
    names = dict(SECTIONS).get(app["app_label"], ())
    # sorted() is stable: models not in the table keep Django's order after the named ones.
    app["models"] = sorted(app["models"], key=lambda model: _position(names, model["object_name"]))
    return app
