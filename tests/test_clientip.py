"""Client address (X-Forwarded-For from trusted proxies only, read from the right) and the per-partner
IP allowlist, directly and through /webhook/<token>."""

import ipaddress
import logging

import pytest
from django.core.checks import run_checks
from django.test import RequestFactory

from orders.clientip import address_allowed, client_ip
from orders.models import Delivery
from tests.factories import load_settings, postback

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def request_from(peer: str, forwarded: str | None = None):
    meta = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **meta)


@pytest.mark.parametrize("peer, forwarded, client", [
    # No proxy trusted: the header is whatever the client wrote; the peer is the client.
    ("198.51.100.1", "192.0.2.5", "198.51.100.1"),
    ("2001:db8::1", None, "2001:db8::1"),
    ("::ffff:198.51.100.1", None, "198.51.100.1"),
    ("", None, None),
    ("unix:/run/gunicorn.sock", "192.0.2.5", None),
])
def test_without_trusted_proxies_the_header_is_ignored(settings, peer, forwarded, client):
    settings.TRUSTED_PROXIES = ()
    assert client_ip(request_from(peer, forwarded)) == client


@pytest.mark.parametrize("peer, forwarded, client", [
    ("10.0.0.2", "192.0.2.5", "192.0.2.5"),
    # The leftmost value is the client's own claim; the rightmost untrusted hop is the fact.
    ("10.0.0.2", "192.0.2.5, 198.51.100.1", "198.51.100.1"),
    ("10.0.0.2", "192.0.2.5,198.51.100.1, 10.0.0.3", "198.51.100.1"),
    ("fd00::2", "2001:db8::5", "2001:db8::5"),
    # Every hop is ours: the first proxy is the one that saw the client (an internal caller).
    ("10.0.0.2", "10.0.0.3, 10.0.0.4", "10.0.0.3"),
    ("10.0.0.2", "", "10.0.0.2"),
    ("10.0.0.2", None, "10.0.0.2"),
    # A proxy of ours forwarded something that is not an address: unknown, never a guess.
    ("10.0.0.2", "192.0.2.5, not-an-ip", None),
    ("10.0.0.2", "192.0.2.5, 198.51.100.1:443", None),
    ("10.0.0.2", "fe80::1%eth0", None),
    # An untrusted peer's header is never read, however it looks.
    ("198.51.100.1", "10.0.0.3", "198.51.100.1"),
])
def test_trusted_proxy_header_is_read_from_the_right(settings, peer, forwarded, client):
    settings.TRUSTED_PROXIES = PROXIES
    assert client_ip(request_from(peer, forwarded)) == client


def test_allowlist_matches_ranges_and_refuses_unknown_addresses(settings):
    settings.WEBHOOK_ALLOWED_IPS = {"epn_bz": (ipaddress.ip_network("192.0.2.0/24"),
                                               ipaddress.ip_network("2001:db8::/32"))}
    assert address_allowed("epn_bz", "192.0.2.200")
    assert address_allowed("epn_bz", "2001:db8::1")
    assert not address_allowed("epn_bz", "192.0.3.1")
    assert not address_allowed("epn_bz", None)
    assert not address_allowed("epn_bz", "garbage")
    assert address_allowed("other_network", "203.0.113.1"), "a partner without an allowlist is open"


@pytest.mark.django_db
class TestThroughTheWebhook:
    @pytest.fixture(autouse=True)
    def allowlist(self, settings):
        settings.TRUSTED_PROXIES = PROXIES
        settings.WEBHOOK_ALLOWED_IPS = {"epn_bz": (ipaddress.ip_network("192.0.2.0/24"),)}

    def test_allowed_address_is_stored_as_the_sender(self, client, webhook_url):
        assert client.get(webhook_url, postback(), REMOTE_ADDR="192.0.2.5").status_code == 200
        assert Delivery.objects.get().remote_addr == "192.0.2.5"

    def test_other_address_gets_the_wrong_token_answer_and_a_log_line(self, client, webhook_url, caplog):
        with caplog.at_level(logging.WARNING, logger="epnhook.webhook"):
            response = client.get(webhook_url, postback(), REMOTE_ADDR="198.51.100.1")
        assert response.status_code == 404 and response.json() == {"error": "not found"}
        assert Delivery.objects.count() == 0
        assert any("198.51.100.1" in message and "WEBHOOK_ALLOWED_IPS" in message for message in caplog.messages)

    def test_spoofed_header_from_an_untrusted_address_is_ignored(self, client, webhook_url):
        response = client.get(webhook_url, postback(), REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="192.0.2.5")
        assert response.status_code == 404
        assert Delivery.objects.count() == 0

    def test_spoofed_leftmost_value_behind_our_proxy_is_ignored(self, client, webhook_url):
        response = client.get(webhook_url, postback(), REMOTE_ADDR="10.0.0.2",
                              HTTP_X_FORWARDED_FOR="192.0.2.5, 198.51.100.1")
        assert response.status_code == 404

    def test_real_client_behind_our_proxy_is_allowed_and_recorded(self, client, webhook_url):
        response = client.get(webhook_url, postback(), REMOTE_ADDR="10.0.0.2",
                              HTTP_X_FORWARDED_FOR="198.51.100.1, 192.0.2.5")
        assert response.status_code == 200
        delivery = Delivery.objects.get()
        assert delivery.remote_addr == "192.0.2.5"
        assert delivery.headers["X-Forwarded-For"] == "198.51.100.1, 192.0.2.5", "the raw header is kept as sent"


def test_settings_read_the_documented_formats():
    result = load_settings(TRUSTED_PROXIES="10.0.0.0/8, fd00::/8",
                           WEBHOOK_ALLOWED_IPS="epn_bz:192.0.2.0/24;198.51.100.7/32,other:2001:db8::/32")
    assert result.returncode == 0, result.stderr
    assert "IPv4Network('10.0.0.0/8'), IPv6Network('fd00::/8')" in result.stdout
    assert "'epn_bz': (IPv4Network('192.0.2.0/24'), IPv4Network('198.51.100.7/32'))" in result.stdout
    assert "'other': (IPv6Network('2001:db8::/32'),)" in result.stdout


@pytest.mark.parametrize("environ, complaint", [
    ({"TRUSTED_PROXIES": "10.0.0.0/33"}, "TRUSTED_PROXIES"),
    ({"TRUSTED_PROXIES": "10.0.0.1/8"}, "host bits set"),
    ({"WEBHOOK_ALLOWED_IPS": "192.0.2.0/24"}, "partner:cidr"),
    ({"WEBHOOK_ALLOWED_IPS": "epn_bz:"}, "partner:cidr"),
    ({"WEBHOOK_ALLOWED_IPS": "epn_bz:192.0.2.0/24,epn_bz:198.51.100.0/24"}, "twice"),
    ({"WEBHOOK_ALLOWED_IPS": "epn_bz:192.0.2.0/24;nonsense"}, "WEBHOOK_ALLOWED_IPS for epn_bz"),
])
def test_bad_network_settings_stop_the_start(environ, complaint):
    result = load_settings(**environ)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and complaint in result.stderr


def test_allowlist_for_an_unknown_partner_is_a_system_check_error(settings):
    settings.WEBHOOK_ALLOWED_IPS = {"epn-bz": (ipaddress.ip_network("192.0.2.0/24"),)}
    assert "epnhook.E004" in {message.id for message in run_checks()}
    settings.WEBHOOK_ALLOWED_IPS = {"epn_bz": (ipaddress.ip_network("192.0.2.0/24"),)}
    assert "epnhook.E004" not in {message.id for message in run_checks()}
