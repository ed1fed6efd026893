"""The network admin: adding a network without code (its validation), its URL to paste, its tokens (issued
and shown once, revoked, each in the history), "Try a postback" (stores nothing), the offer to replay its
invalid deliveries after a mapping change, and who may see any of it."""

import re
from urllib.parse import urlencode

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from orders.ingest import ingest
from orders.models import Delivery, Order
from orders.rawrequest import RawRequest
from partners.base import OrderStatus
from partners.models import Network, NetworkToken, token_digest
from tests import admin_helpers
from tests.admin_helpers import PASSWORD, make_viewer
from tests.networks import actionpay_row
from tests.settings import TEST_TOKEN, TEST_TOKEN_ROTATED

pytestmark = pytest.mark.django_db
staff_client = admin_helpers.staff_client  # the shared fixture, used by name

ADD = "admin:partners_network_add"
ACTIONPAY_FORM = {
    "name": "ActionPay", "slug": "actionpay", "uniq_id_parameter": "uniqueid", "click_id_parameter": "subaccount",
    "commission_fee_parameter": "payment", "offer_id_parameter": "offer", "time_of_order_parameter": "time",
    "timezone": "Europe/Moscow", "date_format": "any", "decimal_separator": ".", "default_currency": "RUB",
    "macro": "{name}",
}
ACTIONPAY_POSTBACK = {"uniqueid": "AP-1", "subaccount": "user-7", "payment": "12.50", "offer": "99"}


def change_url(network: Network) -> str:
    return reverse("admin:partners_network_change", args=[network.pk])


def page_url(name: str, network: Network, *args) -> str:
    return reverse(f"admin:partners_network_{name}", args=[network.pk, *args])


def issued_url(response) -> str:
    """The postback URL an "issue a token" page shows, once."""
    return re.search(r'<textarea id="postback-url"[^>]*>([^<]+)</textarea>', response.content.decode())[1] \
        .replace("&amp;", "&")


def issue(client, network: Network, **fields) -> str:
    response = client.post(page_url("issue_token", network), {"label": "", "implied_status": "", **fields})
    assert response.status_code == 200, response.content.decode()[:2000]
    return issued_url(response)


def history(network: Network) -> list[str]:
    return [entry.get_change_message() for entry in LogEntry.objects.filter(object_id=str(network.pk))
            .order_by("action_time", "pk")]


def test_a_network_added_in_the_admin_takes_postbacks_at_its_tokens_url(staff_client):
    response = staff_client.post(reverse(ADD), ACTIONPAY_FORM)
    network = Network.objects.get(slug="actionpay")
    assert response.status_code == 302 and response.url == change_url(network)
    page = staff_client.get(change_url(network)).content.decode()
    assert "http://testserver/webhook/&lt;token&gt;?uniqueid={uniqueid}&amp;subaccount={subaccount}&amp;" \
           "payment={payment}&amp;offer={offer}&amp;time={time}" in page
    url = issue(staff_client, network, label="accepted", implied_status="completed")
    assert url.startswith("http://testserver/webhook/") and url.endswith("&time={time}")
    token = re.search(r"/webhook/([^?]+)", url)[1]
    assert len(token) == 43  # 32 random bytes
    assert NetworkToken.objects.get().digest == token_digest(token).hex()
    assert token not in staff_client.get(change_url(network)).content.decode(), "shown once"
    # The network calls the URL with its macros filled in.
    answer = staff_client.get(f"/webhook/{token}", ACTIONPAY_POSTBACK)
    assert answer.status_code == 200 and answer.json()["status"] == "created"
    order = Order.objects.get()
    assert (order.partner, order.uniq_id, order.click_id, order.order_status) == \
        ("actionpay", "AP-1", "user-7", "completed")
    assert history(network) == ["Added.", "Added webhook token “accepted”."]


def test_a_mapping_without_a_required_field_is_refused_naming_it(staff_client):
    form = {**ACTIONPAY_FORM, "click_id_parameter": ""}
    response = staff_client.post(reverse(ADD), form)
    assert response.status_code == 200 and not Network.objects.filter(slug="actionpay").exists()
    errors = response.context["adminform"].form.errors
    assert errors["click_id_parameter"] == ["Required: map the parameter that carries click id (user)."]
    assert errors["__all__"] == ["Required fields not mapped: click id (user)."]
    assert "Required fields not mapped: click id (user)." in response.content.decode()


def test_a_network_cannot_take_a_built_in_slug(staff_client):
    response = staff_client.post(reverse(ADD), {**ACTIONPAY_FORM, "slug": "admitad"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["slug"]
    assert Network.objects.get(slug="admitad").built_in


def test_a_token_for_a_network_without_a_status_word_must_imply_one(staff_client):
    network = actionpay_row()
    network.save()
    response = staff_client.post(page_url("issue_token", network), {"label": "x", "implied_status": ""})
    assert response.status_code == 200 and "postback-url" not in response.content.decode()
    assert "each of its URLs must imply a status" in response.content.decode()
    assert not NetworkToken.objects.exists()


def test_an_issued_token_is_shown_once_and_never_cached(staff_client):
    network = Network.objects.get(slug="epn_bz")
    response = staff_client.post(page_url("issue_token", network), {"label": "rotation 2026"})
    assert "no-store" in response["Cache-Control"]
    token = re.search(r"/webhook/([A-Za-z0-9_-]{43})", issued_url(response))[1]
    # EPN.bz appends its own parameters: its URL is the bare webhook URL.
    assert issued_url(response) == f"http://testserver/webhook/{token}"
    assert staff_client.get(f"/webhook/{token}", {"click_id": "1", "order_number": "N", "order_status": "waiting"}) \
        .status_code == 200


def test_revoking_a_token_answers_its_url_404_and_is_in_the_history(staff_client):
    network = Network.objects.get(slug="admitad")
    url = issue(staff_client, network, label="old")
    token = re.search(r"/webhook/([^?]+)", url)[1]
    row = NetworkToken.objects.get()
    page = staff_client.get(change_url(network)).content.decode()
    assert page_url("revoke_token", network, row.pk) in page
    confirm = staff_client.get(page_url("revoke_token", network, row.pk))
    assert confirm.status_code == 200 and NetworkToken.objects.get().revoked_at is None
    response = staff_client.post(page_url("revoke_token", network, row.pk))
    assert response.status_code == 302 and NetworkToken.objects.get().revoked_at is not None
    assert staff_client.get(f"/webhook/{token}", {"admitad_id": "1", "subid": "1", "payment_status": "pending",
                                                 "currency": "RUB"}).status_code == 404
    assert history(network) == ["Added webhook token “old”.", "Changed revoked for webhook token “old”."]
    assert staff_client.post(page_url("revoke_token", network, row.pk)).status_code == 404  # revoked already


def test_a_built_in_network_shows_its_code_and_its_environment_tokens_never_their_text(staff_client):
    page = staff_client.get(change_url(Network.objects.get(slug="epn_bz")))
    content = page.content.decode()
    assert page.status_code == 200
    assert "2 tokens, configured in WEBHOOK_TOKENS or WEBHOOK_SECRET_TOKEN" in content
    for token in (TEST_TOKEN, TEST_TOKEN_ROTATED):
        assert token not in content
    assert "waiting, pending (on hold): pending, hold" not in content  # the labels are per status
    assert "completed, approved, confirmed" in content
    assert 'name="uniq_id_parameter"' not in content and 'name="_save"' not in content  # read-only
    admitad = staff_client.get(change_url(Network.objects.get(slug="admitad"))).content.decode()
    assert "http://testserver/webhook/&lt;token&gt;?admitad_id=[[[admitad_id]]]&amp;order_id=[[[order_id]]]" in admitad
    assert staff_client.post(reverse("admin:partners_network_delete", args=[Network.objects.get(slug="epn_bz").pk])) \
        .status_code == 403


def test_once_the_network_has_postbacks_its_slug_is_fixed_and_it_cannot_be_deleted(staff_client):
    network = actionpay_row()
    network.save()
    form = staff_client.get(change_url(network)).context["adminform"].form
    assert "slug" in form.fields
    ingest(RawRequest(partner="actionpay", method="GET", query_string="uniqueid=1"))
    form = staff_client.get(change_url(network)).context["adminform"].form
    assert "slug" not in form.fields
    staff_client.post(change_url(network), {**ACTIONPAY_FORM, "slug": "renamed"})
    assert Network.objects.get(pk=network.pk).slug == "actionpay"
    assert staff_client.post(reverse("admin:partners_network_delete", args=[network.pk])).status_code == 403


# --- Try a postback ---------------------------------------------------------------------------------------

def test_try_a_postback_shows_what_would_be_stored_and_stores_nothing(staff_client):
    network = Network.objects.get(slug="admitad")
    url = page_url("try_postback", network)
    form = staff_client.get(url)
    assert form.context["form"].initial["postback"].startswith("admitad_id=3318092817&")
    query = "admitad_id=9&payment_status=Approved&subid=u1&order_sum=1500,5&currency=rub"
    refused = staff_client.post(url, {"postback": f"https://webhook.example.com/webhook/x?{query}"})
    assert refused.context["status_code"] == 400
    assert refused.context["answer"] == '{"error": "order_sum \'1500,5\' is not a plain non-negative number like ' \
                                        '1500.50", "field": "order_sum"}'
    accepted = staff_client.post(url, {"postback": query.replace("1500,5", "1500.5")})
    stored = {name: value for name, _label, value in accepted.context["stored"]}
    assert accepted.context["status_code"] == 200
    assert (stored["order_status"], stored["original_status"], stored["revenue"], stored["currency"]) == \
        ("completed", "Approved", "1500.5", "RUB")
    assert accepted.context["outcome"] == "The postback would be stored as a new order."
    assert Order.objects.count() == 0 and Delivery.objects.count() == 0
    # A pasted URL holds a token: an error report of this request would show it as hidden.
    assert accepted.wsgi_request.sensitive_post_parameters == ("postback",)


def test_try_a_postback_reads_the_status_a_pasted_urls_token_implies(staff_client):
    network = actionpay_row()
    network.save()
    url = issue(staff_client, network, implied_status="rejected")
    filled = url.replace("{uniqueid}", "AP-5").replace("{subaccount}", "7").replace("{payment}", "1") \
        .replace("{offer}", "").replace("{time}", "")
    response = staff_client.post(page_url("try_postback", network), {"postback": filled})
    stored = {name: value for name, _label, value in response.context["stored"]}
    assert (stored["order_status"], stored["original_status"]) == ("rejected", "")
    # Without a token, and no status chosen: the 400 the network would get from a URL that implies none.
    bare = staff_client.post(page_url("try_postback", network), {"postback": "uniqueid=1&subaccount=2"})
    assert bare.context["status_code"] == 400 and '"field": "token"' in bare.context["answer"]
    chosen = staff_client.post(page_url("try_postback", network), {"postback": "uniqueid=1&subaccount=2",
                                                                    "implied_status": "waiting"})
    assert chosen.context["status_code"] == 200
    assert Order.objects.count() == 0 and Delivery.objects.count() == 0
    assert NetworkToken.objects.get().last_used_at is None


# --- Replay after a mapping change ------------------------------------------------------------------------

def test_after_a_mapping_change_the_admin_offers_to_replay_the_invalid_deliveries(staff_client):
    network = actionpay_row()
    network.save()
    query = urlencode({**ACTIONPAY_POSTBACK, "payment": "12,50"})
    stored = ingest(RawRequest(partner="actionpay", method="GET", query_string=query,
                               implied_status=OrderStatus.COMPLETED))
    assert stored.outcome == "invalid" and stored.field == "payment"
    # A change that is not of the mapping offers nothing.
    response = staff_client.post(change_url(network), {**ACTIONPAY_FORM, "name": "ActionPay RU"}, follow=True)
    assert "replay-offer" not in response.content.decode()
    response = staff_client.post(change_url(network), {**ACTIONPAY_FORM, "decimal_separator": ","}, follow=True)
    offer = [str(message) for message in response.context["messages"]]
    assert any("has invalid deliveries that it may now read" in message for message in offer), offer
    replay_page = staff_client.get(page_url("replay", network))
    assert replay_page.context["count"] == 1
    response = staff_client.post(page_url("replay", network), follow=True)
    messages = [str(message) for message in response.context["messages"]]
    assert f"Delivery #{stored.delivery_id}: stored as order #{Order.objects.get().pk}." in messages
    assert "processed 1: created 1" in messages[-1]
    assert Order.objects.get().order_status == "completed"
    assert Delivery.objects.get().outcome == "created"


# --- Who may ----------------------------------------------------------------------------------------------

def test_the_viewer_group_sees_no_network_and_no_token(client):
    network = actionpay_row()
    network.save()
    client.force_login(make_viewer())
    index = client.get(reverse("admin:index")).content.decode()
    assert "partner networks" not in index.lower() and reverse("admin:partners_network_changelist") not in index
    for url in (reverse("admin:partners_network_changelist"), change_url(network), reverse(ADD),
                page_url("issue_token", network), page_url("try_postback", network), page_url("replay", network)):
        assert client.get(url).status_code == 403, url
    assert client.post(page_url("issue_token", network), {"implied_status": "waiting"}).status_code == 403
    assert not NetworkToken.objects.exists()


def test_a_user_who_may_only_view_networks_issues_and_revokes_nothing(client):
    user = User.objects.create_user("reader", password=PASSWORD, is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_network"))
    client.force_login(user)
    network = Network.objects.get(slug="epn_bz")
    row, _token = NetworkToken.issue(network)
    page = client.get(change_url(network)).content.decode()
    assert "issue-token-link" not in page and "revoke-token" not in page and "replay-link" not in page
    assert client.get(page_url("try_postback", network)).status_code == 200
    assert client.post(page_url("issue_token", network)).status_code == 403
    assert client.post(page_url("revoke_token", network, row.pk)).status_code == 403
    assert client.post(page_url("replay", network)).status_code == 403
    assert NetworkToken.objects.get().revoked_at is None and NetworkToken.objects.count() == 1


def test_the_order_list_and_detail_know_a_configured_network(staff_client):
    actionpay_row(name="ActionPay").save()
    result = ingest(RawRequest(partner="actionpay", method="GET", query_string=urlencode(ACTIONPAY_POSTBACK),
                               implied_status=OrderStatus.WAITING))
    changelist = staff_client.get(reverse("admin:orders_order_changelist"), {"partner": "actionpay"})
    assert [order.uniq_id for order in changelist.context["cl"].result_list] == ["AP-1"]
    assert "ActionPay" in changelist.content.decode()
    assert staff_client.get(reverse("admin:orders_order_change", args=[result.order_id])).status_code == 200
    delivery = staff_client.get(reverse("admin:orders_delivery_change", args=[result.delivery_id])).content.decode()
    assert "waiting (new)" in delivery  # the status its URL implied
