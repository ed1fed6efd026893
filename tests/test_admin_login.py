"""Admin login brute-force protection (django-axes) keyed on the client address our proxy reports."""

import pytest
from django.test import RequestFactory
from django.urls import reverse

from epnhook.client_ip import client_ip
from tests.admin_helpers import PASSWORD, make_admin


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the left entry was written by the client
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.3", "203.0.113.9"),
        (1, None, "172.18.0.2"),  # not through the proxy: the socket address
        (2, "203.0.113.9", "172.18.0.2"),
        (1, "not-an-address", "172.18.0.2"),
        (0, "203.0.113.9", "172.18.0.2"),  # no proxy: the header is the client's own and ignored
    ],
)
def test_client_ip_is_counted_from_the_right(settings, count, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = count
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR="172.18.0.2", **headers)
    assert client_ip(request) == expected


@pytest.mark.django_db
def test_repeated_failures_lock_out_that_client_only(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
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
