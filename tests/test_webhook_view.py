"""The /webhook/<token> endpoint over HTTP (Django's test client)."""

import json

import pytest

from orders.models import Delivery, Order
from tests.factories import postback
from tests.settings import TEST_TOKEN_ROTATED

pytestmark = pytest.mark.django_db


def test_get_creates_order(client, webhook_url):
    response = client.get(webhook_url, postback())
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "created" and body["order_id"] == Order.objects.get().pk


def test_trailing_slash_is_accepted(client, webhook_url):
    assert client.get(webhook_url + "/", postback()).status_code == 200


def test_duplicate_is_200(client, webhook_url):
    client.get(webhook_url, postback())
    response = client.get(webhook_url, postback())
    assert response.status_code == 200 and response.json()["status"] == "duplicate"
    assert Order.objects.count() == 1 and Delivery.objects.count() == 2


def test_post_form_json_and_query(client, webhook_url):
    assert client.post(webhook_url, postback(uniq_id="form")).status_code == 200
    assert client.post(webhook_url, json.dumps(postback(uniq_id="json")),
                       content_type="application/json").status_code == 200
    query = "click_id=1&order_number=Q&uniq_id=query&order_status=waiting"
    assert client.post(f"{webhook_url}?{query}").status_code == 200
    assert set(Order.objects.values_list("uniq_id", flat=True)) == {"form", "json", "query"}


def test_every_configured_token_works(client):
    response = client.get(f"/webhook/{TEST_TOKEN_ROTATED}", postback())
    assert response.status_code == 200


@pytest.mark.parametrize("token", ["wrong", "test-token-epn", "x" * 500])
def test_unknown_token_is_json_404_and_stores_nothing(client, token):
    response = client.get(f"/webhook/{token}", postback())
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}
    assert Delivery.objects.count() == 0


def test_removed_token_stops_working(client, settings, webhook_url):
    settings.WEBHOOK_TOKENS = [("epn_bz", TEST_TOKEN_ROTATED)]
    assert client.get(webhook_url, postback()).status_code == 404
    assert client.get(f"/webhook/{TEST_TOKEN_ROTATED}", postback()).status_code == 200


def test_bad_payload_is_400_with_field_and_kept(client, webhook_url):
    response = client.get(webhook_url, postback(revenue="a lot"))
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "revenue" and "revenue" in body["error"]
    delivery = Delivery.objects.get(pk=body["delivery_id"])
    assert delivery.outcome == "invalid" and "revenue=a+lot" in delivery.query_string


def test_missing_required_field_names_it(client, webhook_url):
    response = client.get(webhook_url, postback(click_id=None))
    assert response.status_code == 400 and response.json()["field"] == "click_id"


def test_body_over_64_kib_is_413_before_any_write(client, webhook_url):
    response = client.post(webhook_url, b"x=" + b"a" * (64 * 1024), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413 and "error" in response.json()
    assert Delivery.objects.count() == 0


def test_body_of_exactly_64_kib_is_read(client, webhook_url):
    body = b"&".join([b"click_id=1&order_number=A&order_status=waiting", b"pad=" + b"a" * 100])
    body += b"&z=" + b"b" * (64 * 1024 - len(body) - 3)
    assert len(body) == 64 * 1024
    assert client.post(webhook_url, body, content_type="application/x-www-form-urlencoded").status_code == 200


def test_oversized_query_string_is_rejected(client, webhook_url):
    response = client.get(webhook_url + "?pad=" + "a" * 9000)
    assert response.status_code == 413 and response.json()["field"] == "query"


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_json_405(client, webhook_url, method):
    response = getattr(client, method)(webhook_url)
    assert response.status_code == 405 and response["Allow"] == "GET, POST"
    assert "error" in response.json()


def test_delivery_keeps_sender_details(client, webhook_url):
    client.get(webhook_url, postback(), HTTP_USER_AGENT="ePN-postback/1.0", REMOTE_ADDR="198.51.100.4",
               HTTP_COOKIE="session=secret")
    delivery = Delivery.objects.get()
    assert delivery.user_agent == "ePN-postback/1.0" and delivery.remote_addr == "198.51.100.4"
    assert delivery.headers["User-Agent"] == "ePN-postback/1.0"
    assert "Cookie" not in delivery.headers


def test_no_csrf_needed_for_post(webhook_url):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert strict.post(webhook_url, postback()).status_code == 200


def test_cyrillic_round_trips(client, webhook_url):
    client.get(webhook_url, postback(offer_name="Алиэкспресс", sub="пользователь №1"))
    order = Order.objects.get()
    assert order.offer_name == "Алиэкспресс" and order.sub == "пользователь №1"


def test_unhandled_error_is_json_500_and_recorded(client, webhook_url, monkeypatch):
    from orders import ingest

    monkeypatch.setattr(ingest, "save_order", lambda *a: 1 / 0)
    client.raise_request_exception = False
    response = client.get(webhook_url, postback())
    assert response.status_code == 500 and "error" in response.json()
    assert Delivery.objects.get().outcome == "error"


def test_unwritable_spool_while_the_database_is_down_is_503_even_with_202_ack(
        client, webhook_url, monkeypatch, settings, tmp_path, mailoutbox):
    from django.db import OperationalError

    from orders import alerts, ingest

    def down(raw):
        raise OperationalError(2003, "Can't connect to server")

    monkeypatch.setattr(ingest, "store", down)
    (tmp_path / "not-a-directory").write_text("")
    settings.SPOOL_DIR = tmp_path / "not-a-directory" / "spool"
    settings.ALERT_STATE_DIR = tmp_path / "alerts"
    settings.SPOOL_ACK_STATUS = 202
    response = client.get(webhook_url, postback())
    alerts.wait_for_pending()
    assert response.status_code == 503 and response["Retry-After"]
    assert response.json()["status"] == "unavailable"
    assert len(mailoutbox) == 1 and "spool cannot be written" in mailoutbox[0].subject


@pytest.mark.parametrize(("params", "named"), [
    (postback(), "uniq_id=EPN-12345 status=completed"),  # `approved` is EPN's word for completed
    (postback(revenue="lots"), "uniq_id=- status=-"),  # a payload that does not parse names nothing
])
def test_the_log_line_of_a_spooled_postback_names_it(client, webhook_url, monkeypatch, settings, tmp_path, caplog,
                                                      params, named):
    from django.db import OperationalError

    from orders import ingest

    def down(raw):
        raise OperationalError(2003, "Can't connect to server")

    monkeypatch.setattr(ingest, "store", down)
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.ALERT_STATE_DIR = tmp_path / "alerts"
    settings.INGEST_ATTEMPTS = 1
    with caplog.at_level("INFO", logger="epnhook.webhook"):
        response = client.get(webhook_url, {**params, "order_status": "approved"})
    assert response.json()["status"] == "spooled"
    [record] = [record for record in caplog.records if record.name == "epnhook.webhook"]
    assert record.getMessage().startswith(f"postback spooled partner=epn_bz {named} ms=")
    assert record.getMessage().endswith(" delivery_id=-")
