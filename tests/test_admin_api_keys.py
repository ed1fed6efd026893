"""The admin's API keys: created with the key shown once, stored hashed, revoked by an action, and
managed by superusers only (the viewer group sees none of it)."""

import re

import pytest
from django.db import connection
from django.urls import reverse

from orders import readapi
from orders.models import ApiKey
from tests.admin_helpers import make_viewer, staff_client  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

ADD = "admin:orders_apikey_add"
LIST = "admin:orders_apikey_changelist"


@pytest.fixture(autouse=True)
def settled(settings):
    settings.API_SETTLE_SECONDS = 0


def create(client, consumer="cashback site") -> str:
    """Create a key through the admin's form; returns the key the page after saving shows."""
    response = client.post(reverse(ADD), {"consumer": consumer})
    assert response.status_code == 200, response.content[:300]
    page = response.content.decode()
    assert "shown this once only" in page
    return re.search(r'<code id="api-key">([^<]+)</code>', page).group(1)


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(staff_client, client):  # noqa: F811
    key = create(staff_client)
    api_key = ApiKey.objects.get()
    assert api_key.consumer == "cashback site" and api_key.key_hash == readapi.hash_key(key)
    assert key.startswith(readapi.KEY_PREFIX) and api_key.prefix == key[: readapi.VISIBLE_CHARACTERS]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")
        assert not any(key in str(value) for row in cursor.fetchall() for value in row)
    # Never again: not on the list, not on the key's page, not in a message for the next page.
    for url in (reverse(LIST), reverse("admin:orders_apikey_change", args=[api_key.pk])):
        page = staff_client.get(url).content.decode()
        assert api_key.prefix in page and key not in page
    assert client.get("/api/v1/orders", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def test_two_keys_are_different(staff_client):  # noqa: F811
    assert create(staff_client, "a") != create(staff_client, "b")


def test_the_revoke_action_ends_a_keys_access(staff_client, client):  # noqa: F811
    key = create(staff_client)
    other = create(staff_client, "other site")
    api_key = ApiKey.objects.get(consumer="cashback site")
    response = staff_client.post(reverse(LIST), {"action": "revoke_keys", "_selected_action": [api_key.pk]},
                                 follow=True)
    assert "1 key revoked." in response.content.decode()
    revoked_at = ApiKey.objects.get(pk=api_key.pk).revoked_at
    assert revoked_at is not None
    assert client.get("/api/v1/orders", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 401
    assert client.get("/api/v1/orders", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200
    # Revoking again changes nothing, and a key cannot be deleted (the list keeps who had access).
    response = staff_client.post(reverse(LIST), {"action": "revoke_keys", "_selected_action": [api_key.pk]},
                                 follow=True)
    assert "0 keys revoked." in response.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at == revoked_at
    assert staff_client.get(reverse("admin:orders_apikey_delete", args=[api_key.pk])).status_code == 403
    # The list tells the valid keys from the revoked ones.
    for state, consumers in (("valid", ["other site"]), ("revoked", ["cashback site"])):
        listed = staff_client.get(reverse(LIST), {"state": state}).context["cl"].result_list
        assert [key.consumer for key in listed] == consumers


def test_staff_without_the_permission_cannot_see_or_make_keys(client):
    readapi.create_key("site")
    client.force_login(make_viewer())
    assert client.get(reverse(LIST)).status_code == 403
    assert client.post(reverse(ADD), {"consumer": "mine"}).status_code == 403
    assert ApiKey.objects.count() == 1
    assert "API keys" not in client.get(reverse("admin:index")).content.decode()
