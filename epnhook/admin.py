"""The project's admin site: Django's, with the sidebar and the index ordered for the people who use it.

Staff open the admin for the ledger, so it comes first; the networks' setup next; the accounts after;
Axes' access logs, which only a superuser acts on, last and for superusers only (a staff member given
the axes permissions still does not see them: the logs hold the addresses and user names of failed
logins).
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

# The app list's order: (app label, its models' object names in order). An app or a model not named
# here follows the named ones, in Django's alphabetical order. "Overview" is the admin's front page
# (orders.views.overview), listed as the ledger's first entry for staff who may read the orders.
SECTIONS = (
    ("orders", ("Overview", "Order", "Delivery", "ReconcileRun", "OutboundEvent", "ApiKey")),
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
        if request.user.has_perm("orders.view_order"):
            for app in apps:
                if app["app_label"] == "orders":
                    app["models"].append(_overview_entry())
        if not request.user.is_superuser:
            apps = [app for app in apps if app["app_label"] not in SUPERUSER_APPS]
        return sorted((_ordered_models(app) for app in apps), key=_app_position)


def _overview_entry() -> dict:
    """The overview as the app list shows a model: a name and a link, nothing to add or change. The
    sidebar marks an entry current when its link is a prefix of the page's path, which the admin's root
    is of every page; the link's query (the default period) keeps it from lighting up everywhere."""
    from orders.overview import DEFAULT_PERIOD

    return {"name": _("Overview"), "object_name": "Overview",
            "admin_url": f"{reverse('overview')}?days={DEFAULT_PERIOD}", "add_url": None, "view_only": True,
            "perms": {"view": True}}


def _position(names, name) -> int:
    return names.index(name) if name in names else len(names)


def _app_position(app) -> int:
    return _position([label for label, _models in SECTIONS], app["app_label"])


def _ordered_models(app):
    names = dict(SECTIONS).get(app["app_label"], ())
    # sorted() is stable: models not in the table keep Django's order after the named ones.
    app["models"] = sorted(app["models"], key=lambda model: _position(names, model["object_name"]))
    return app
