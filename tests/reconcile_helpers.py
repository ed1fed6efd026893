"""Fake networks configured as the service's APIs, for the tests of reconciliation (the command, the admin).

The fixtures `epn` and `admitad` (tests/conftest.py) give a Network: a fake of tests/fake_networks.py,
entered, whose client id, secret and URLs are in settings.RECONCILE_APIS.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from urllib.parse import urlencode

from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from orders.ingest import ingest
from orders.rawrequest import RawRequest
from partners.admitad import Admitad
from tests.fake_networks import FakeAdmitad, FakeEpn, FakeNetwork


@dataclass
class Network:
    """One fake network, configured as the service's API, with what the tests need to know of its words."""

    slug: str
    fake: FakeNetwork
    # Our status -> the word the network's API uses for it, and the word its postback uses.
    api_words: dict[str, str]
    postback_words: dict[str, str]

    def add(self, uniq_id: str, status: str, **changes) -> dict:
        """A record at the network, in our status."""
        return self.fake.add(uniq_id, status=self.api_words[status], **changes)

    def postback(self, uniq_id: str, status: str, commission_fee: str = "5.00", **changes):
        """A postback of the event that did arrive, through the write path, as a live request stores it."""
        if self.slug == "epn_bz":
            params = {"click_id": "7", "order_number": f"N-{uniq_id}", "uniq_id": uniq_id, "revenue": "100.00",
                      "commission_fee": commission_fee, "offer_id": "1", "order_status": self.postback_words[status]}
        else:
            params = {**Admitad.example, "admitad_id": uniq_id, "order_id": f"N-{uniq_id}", "subid": "7",
                      "payment_sum": commission_fee, "order_sum": "100.00", "currency": "RUB", "offer_id": "1",
                      "payment_status": self.postback_words[status]}
        result = ingest(RawRequest(partner=self.slug, method="GET", query_string=urlencode({**params, **changes})))
        assert result.outcome == "created", result
        return result



# Our status -> the word of EPN.bz's API, and of Admitad's (which has no word for our pending).
EPN_WORDS = {"waiting": "pending", "pending": "hold", "completed": "approved", "rejected": "canceled"}
ADMITAD_WORDS = {"waiting": "pending", "completed": "approved", "rejected": "declined"}


@contextmanager
def configured_epn(settings) -> Iterator[Network]:
    with FakeEpn(ssid_daily_limit=1) as fake:
        network = Network("epn_bz", fake, EPN_WORDS, {status: status for status in EPN_WORDS})
        configure(settings, network)
        yield network


@contextmanager
def configured_admitad(settings) -> Iterator[Network]:
    with FakeAdmitad() as fake:
        network = Network("admitad", fake, ADMITAD_WORDS,
                          {"waiting": "pending", "pending": "hold", "completed": "approved", "rejected": "declined"})
        configure(settings, network)
        yield network


def configure(settings, network: Network) -> None:
    fake = network.fake
    config = {"client_id": fake.client_id, "client_secret": fake.client_secret}
    if network.slug == "epn_bz":
        config.update(api_url=fake.api_url, oauth_url=fake.oauth_url)
    else:
        config.update(api_url=fake.url)
    settings.RECONCILE_APIS = {**settings.RECONCILE_APIS, network.slug: config}


def reconcile_command(*args) -> tuple[int, str, str]:
    """Run the command; (exit code, stdout, stderr), a CommandError being exit code 1 with its message."""
    out, err = StringIO(), StringIO()
    try:
        call_command("reconcile", *args, stdout=out, stderr=err)
    except CommandError as error:
        return 1, out.getvalue(), f"{err.getvalue()}CommandError: {error}"
    return 0, out.getvalue(), err.getvalue()


def child_database_url() -> str:
    """The test database, for a child process (MariaDB only: SQLite's test database is in memory)."""
    db = connection.settings_dict
    return f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


def child_environment(network: Network) -> dict[str, str]:
    config = django_settings.RECONCILE_APIS[network.slug]
    if network.slug == "epn_bz":
        return {"EPN_API_CLIENT_ID": config["client_id"], "EPN_API_CLIENT_SECRET": config["client_secret"],
                "EPN_API_URL": config["api_url"], "EPN_OAUTH_URL": config["oauth_url"]}
    return {"ADMITAD_CLIENT_ID": config["client_id"], "ADMITAD_CLIENT_SECRET": config["client_secret"],
            "ADMITAD_API_URL": config["api_url"]}


