"""The admin site (epnhook/admin.py): the ledger first in the sidebar and on the index, Axes' access logs
last and for superusers only."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from tests.admin_helpers import make_admin, make_viewer


def app_list(client) -> list[tuple[str, list[str]]]:
    """The list of applications (at apps/: the front page is the overview) as (app label, [model object
    names]), in the order shown."""
    response = client.get(reverse("admin_apps"))
    assert response.status_code == 200
    return [(app["app_label"], [model["object_name"] for model in app["models"]])
            for app in response.context["app_list"]]


@pytest.mark.django_db
def test_a_superuser_sees_the_ledger_first_and_axes_last(client):
    client.force_login(make_admin())
    apps = app_list(client)
    assert [label for label, _models in apps] == ["orders", "partners", "auth", "axes"]
    assert apps[0][1] == ["Overview", "Order", "Delivery", "ReconcileRun", "OutboundEvent", "ApiKey"]
    # The sidebar of every other page is the same list, the overview its first link.
    page = client.get(reverse("admin:orders_order_changelist")).content.decode()
    positions = [page.index(f'class="app-{label} module') for label in ("orders", "partners", "auth", "axes")]
    assert positions == sorted(positions)
    assert 'class="model-overview current-model"' not in page and 'class="model-order current-model"' in page
    assert positions[0] < page.index(f'href="{reverse("overview")}?days=30"', positions[0]) < page.index(
        f'href="{reverse("admin:orders_order_changelist")}"', positions[0])


@pytest.mark.django_db
def test_staff_who_may_not_read_orders_have_no_overview_entry(client):
    clerk = User.objects.create_user("clerk", "clerk@example.com", "x" * 20, is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_reconcilerun"))
    client.force_login(clerk)
    assert app_list(client) == [("orders", ["ReconcileRun"])]


@pytest.mark.django_db
def test_axes_logs_are_hidden_from_staff_even_with_its_permissions(client):
    viewer = make_viewer()
    viewer.user_permissions.add(*Permission.objects.filter(content_type__app_label="axes"))
    viewer = User.objects.get(pk=viewer.pk)  # permissions are cached per instance
    assert viewer.has_perm("axes.view_accessattempt")
    client.force_login(viewer)
    labels = [label for label, _models in app_list(client)]
    assert labels[0] == "orders" and "axes" not in labels
    page = client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert "app-axes" not in page


def test_the_admin_site_is_the_projects():
    from django.contrib import admin

    from epnhook.admin import EpnhookAdminSite

    assert isinstance(admin.site, EpnhookAdminSite)
