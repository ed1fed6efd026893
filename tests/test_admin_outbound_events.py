"""The outbound events' admin: the list with its backlog, an event with its attempts, and the resend action."""

import pytest
from django.urls import reverse
from django.utils import translation

from orders import admin as orders_admin
from orders.ingest import ingest
from orders.models import OutboundEvent
from orders.sender import Sender
from tests import admin_helpers
from tests.factories import raw_get
from tests.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.django_db
staff_client = admin_helpers.staff_client  # the shared fixture, used by name

LIST = "admin:orders_outboundevent_changelist"


@pytest.fixture
def receiver(settings):
    with Receiver() as receiver:
        settings.OUTBOUND_URL = receiver.url
        settings.OUTBOUND_SECRET = SECRET
        settings.OUTBOUND_TIMEOUT = 0.5
        settings.OUTBOUND_RETRY_SCHEDULE = [0, 3600]
        yield receiver


def test_the_list_shows_the_backlog_and_filters_by_state(staff_client, receiver):
    ingest(raw_get(uniq_id="A"))
    ingest(raw_get(uniq_id="B"))
    Sender().send(OutboundEvent.objects.get(uniq_id="A"))
    response = staff_client.get(reverse(LIST))
    content = response.content.decode()
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 2
    assert "Backlog: 1 event not delivered yet" in content
    pending = staff_client.get(reverse(LIST), {"state__exact": "pending"})
    assert [event.uniq_id for event in pending.context["cl"].result_list] == ["B"]
    Sender().send(OutboundEvent.objects.get(uniq_id="B"))
    assert "Backlog: every event is delivered." in staff_client.get(reverse(LIST)).content.decode()


def test_the_backlog_reads_in_russian(staff_client, receiver):
    ingest(raw_get(uniq_id="A"))
    with translation.override("ru"):
        content = staff_client.get(reverse(LIST), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Очередь: 1 событие ещё не доставлено" in content


def test_an_event_shows_its_attempts_and_body(staff_client, receiver):
    ingest(raw_get(uniq_id="A"))
    event = OutboundEvent.objects.get()
    receiver.mode = "500"
    Sender().send(event)
    response = staff_client.get(reverse("admin:orders_outboundevent_change", args=[event.pk]))
    content = response.content.decode()
    assert response.status_code == 200
    assert event.public_id in content and "HTTP 500" in content and "&quot;uniq_id&quot;: &quot;A&quot;" in content
    assert 'name="last_error"' not in content  # read-only


def test_resend_sends_a_failed_event_again_with_its_id(staff_client, receiver):
    ingest(raw_get(uniq_id="A"))
    event = OutboundEvent.objects.get()
    receiver.mode = "500"
    sender = Sender()
    sender.send(event)
    sender.send(OutboundEvent.objects.get())  # the last of its two attempts
    assert OutboundEvent.objects.get().state == "failed"
    response = staff_client.post(reverse(LIST), {"action": "resend", "_selected_action": [event.pk]}, follow=True)
    assert "1 event will be sent again" in response.content.decode()
    receiver.mode = "ok"
    Sender().run_pass()
    assert [item.webhook_id for item in receiver.delivered] == [event.public_id]
    assert OutboundEvent.objects.get().state == "delivered"


def test_every_event_state_has_a_badge_colour():
    assert set(orders_admin.EVENT_STATE_COLOURS) == set(OutboundEvent.State)


def test_a_viewer_sees_the_events_but_may_not_resend(client, receiver):
    ingest(raw_get(uniq_id="A"))
    client.force_login(admin_helpers.make_viewer())
    response = client.get(reverse(LIST))
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 1
    assert "resend" not in response.context["cl"].model_admin.get_actions(response.wsgi_request)
    event = OutboundEvent.objects.get()
    assert client.get(reverse("admin:orders_outboundevent_change", args=[event.pk])).status_code == 200
