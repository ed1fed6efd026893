"""The admin's reconciliation runs: the list and a run's page (its figures, its findings, links to what it
stored), the deliveries of a run, and the button that starts a run in the background."""

import time

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from orders import reconcile
from orders.models import Delivery, ReconcileRun
from tests.admin_helpers import make_admin, make_viewer, staff_client  # noqa: F401 (a fixture)
from tests.fake_networks import Defect
from tests.manage_process import environment
from tests.reconcile_helpers import child_database_url, child_environment, reconcile_command

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def state(settings, tmp_path):
    """Each test's own state directory: the run locks."""
    settings.ALERT_STATE_DIR = tmp_path / "alerts"

LIST = "admin:orders_reconcilerun_changelist"
START = "admin:orders_reconcilerun_start"


@pytest.fixture
def a_run(epn):
    """A run that stored one event, found one conflict and one malformed record."""
    epn.add("1", "completed")
    epn.add("2", "completed", commission_fee="9.00")
    epn.postback("2", "completed")
    epn.fake.add_malformed(Defect.BAD_MONEY, "3")
    assert reconcile_command("--partner", "epn_bz")[0] == 0
    return ReconcileRun.objects.get()


def test_the_list_shows_each_run_newest_first_with_its_figures(staff_client, a_run, epn):  # noqa: F811
    reconcile_command("--partner", "epn_bz")
    page = staff_client.get(reverse(LIST)).content.decode()
    first, second = ReconcileRun.objects.order_by("pk")
    assert page.index(f">{second.pk}</a>") < page.index(f">{first.pk}</a>")
    assert "Reconciliation runs" in page and "2 runs" in page and "succeeded" in page


def test_a_runs_page_shows_its_findings_and_links_to_what_it_stored(staff_client, a_run):  # noqa: F811
    page = staff_client.get(reverse("admin:orders_reconcilerun_change", args=[a_run.pk])).content.decode()
    stored = Delivery.objects.get(reconcile_run=a_run, outcome="created")
    assert reverse("admin:orders_order_change", args=[stored.order_id]) in page
    assert reverse("admin:orders_delivery_change", args=[stored.pk]) in page
    assert "stored: its postback never arrived" in page and "conflict: the network states other money" in page
    assert "malformed record: skipped" in page and "1 234,50" in page
    deliveries = reverse("admin:orders_delivery_changelist") + f"?reconcile_run={a_run.pk}"
    assert f'<a href="{deliveries}">2 deliveries</a>' in page.replace("&amp;", "&")
    # The deliveries of the run, and no other.
    assert "3 deliveries" in staff_client.get(reverse("admin:orders_delivery_changelist")).content.decode()
    assert "2 deliveries" in staff_client.get(deliveries).content.decode()
    delivery_page = staff_client.get(reverse("admin:orders_delivery_change", args=[stored.pk])).content.decode()
    assert reverse("admin:orders_reconcilerun_change", args=[a_run.pk]) in delivery_page


def test_a_bad_run_filter_sends_the_list_back_to_its_start(staff_client):  # noqa: F811
    response = staff_client.get(reverse("admin:orders_delivery_changelist") + "?reconcile_run=x")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_runs_are_read_only_and_viewers_see_them(client, a_run):
    client.force_login(make_viewer())
    assert client.get(reverse(LIST)).status_code == 200
    page = client.get(reverse("admin:orders_reconcilerun_change", args=[a_run.pk])).content.decode()
    assert 'name="_save"' not in page and "Delete" not in page
    assert "Start a run" not in client.get(reverse(LIST)).content.decode()


def starter(username: str, *, may_start: bool) -> User:
    user = make_viewer(username)
    if may_start:
        user.user_permissions.add(Permission.objects.get(codename="start_reconcilerun"))
    return user


def test_staff_with_the_permission_start_a_run_in_the_background(client, epn, monkeypatch):
    started = []
    monkeypatch.setattr(reconcile, "start_in_background", lambda slug, started_by: started.append((slug, started_by)))
    client.force_login(starter("runner", may_start=True))
    page = client.get(reverse(LIST)).content.decode()
    assert "Start a run for EPN.bz" in page and "Start a run for Admitad" not in page  # Admitad has no credentials
    response = client.post(reverse(START), {"partner": "epn_bz"}, follow=True)
    assert started == [("epn_bz", "runner (admin)")]
    assert "A run for EPN.bz has started" in response.content.decode()
    # Not while one holds the network.
    with reconcile.exclusive("epn_bz"):
        response = client.post(reverse(START), {"partner": "epn_bz"}, follow=True)
    assert len(started) == 1 and "is in progress already" in response.content.decode()


@pytest.mark.parametrize(("may_start", "partner", "status"), [
    (False, "epn_bz", 403), (True, "admitad", 400), (True, "", 400),
])
def test_a_start_needs_the_permission_and_a_configured_network(client, epn, monkeypatch, may_start, partner, status):
    monkeypatch.setattr(reconcile, "start_in_background", lambda *args, **kwargs: pytest.fail("started"))
    client.force_login(starter("someone", may_start=may_start))
    assert client.post(reverse(START), {"partner": partner}).status_code == status
    assert client.get(reverse(START)).status_code == 405


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_the_button_starts_the_command_in_a_process_of_its_own(client, epn, monkeypatch, tmp_path, settings):
    """The real thing: a detached `manage.py reconcile` with the service's environment, which records its run."""
    settings.ALERT_STATE_DIR = tmp_path / "alerts"
    for name, value in environment(child_database_url(), tmp_path, **child_environment(epn)).items():
        monkeypatch.setenv(name, value)  # what the service's own environment holds
    epn.add("1", "completed")
    epn.fake.delay_next(1, seconds=8)  # the run takes longer than the request may
    # A superuser: a transactional test's database has lost the viewer group the migrations made.
    client.force_login(make_admin("runner"))
    started = time.monotonic()
    client.post(reverse(START), {"partner": "epn_bz"})
    assert time.monotonic() - started < 5  # the request did not wait for the run
    while time.monotonic() - started < 60 and not ReconcileRun.objects.filter(state="succeeded").exists():
        time.sleep(0.1)
    run = ReconcileRun.objects.get()
    assert (run.state, run.stored, run.started_by) == ("succeeded", 1, "runner (admin)")


def test_the_runs_speak_russian(client, a_run):
    client.force_login(starter("runner", may_start=True))
    page = client.get(reverse(LIST), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Сверки с сетями" in page and "Запустить сверку с EPN.bz" in page and "успешно" in page
    detail = client.get(reverse("admin:orders_reconcilerun_change", args=[a_run.pk]),
                        HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "сохранено: постбэк не пришёл" in detail and "негодная запись: пропущена" in detail
