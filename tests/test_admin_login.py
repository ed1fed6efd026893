"""Admin login brute-force protection (django-axes) keyed on the client address our proxy reports
(the same orders.clientip.client_ip as the webhook; its own cases are in test_clientip.py)."""

import ipaddress

import pytest
from django.urls import reverse

from tests.admin_helpers import PASSWORD, make_admin


@pytest.mark.django_db
def test_repeated_failures_lock_out_that_client_only(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    # Traefik's network: its X-Forwarded-For is believed, read from the right (orders.clientip).
    settings.TRUSTED_PROXIES = (ipaddress.ip_network("172.16.0.0/12"),)
    make_admin("boss")
    login = reverse("admin:login")

    def attempt(password, forwarded):
        return client.post(login, {"username": "boss", "password": password, "next": "/admin/"},
                           HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="172.18.0.2")

    for _ in range(2):
        assert attempt("wrong", "198.51.100.7").status_code == 200  # the form again, with an error
    assert attempt("wrong", "198.51.100.7").status_code == 429  # the limit reached
    # Locked: even the right password, and a forged left-hand entry does not help.
    assert attempt(PASSWORD, "198.51.100.7").status_code == 429
    assert attempt(PASSWORD, "192.0.2.1, 198.51.100.7").status_code == 429
    # Another client behind the same proxy is not affected.
    assert attempt(PASSWORD, "198.51.100.8").status_code == 302
