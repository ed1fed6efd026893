"""Tokens issued in the admin, at the webhook: what they cost (no query per postback at steady state, a flood
of wrong tokens no flood of queries), how soon a change reaches a process (the snapshot's refresh, on a
clock the tests drive), what they say of a postback (the network, an implied status), their last use,
and what a process does when the database cannot tell it (partners.snapshot)."""

import json
import logging

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from orders.models import Delivery, Order
from partners import snapshot
from partners.base import OrderStatus
from partners.models import Network, NetworkToken, token_digest
from tests.factories import postback
from tests.networks import actionpay_row
from tests.settings import TEST_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)
ACTIONPAY = {"uniqueid": "AP-1", "subaccount": "user-7", "payment": "12.50", "offer": "99"}


def issue(slug="epn_bz", **options) -> str:
    """A new admin token of network `slug`, in clear."""
    return NetworkToken.issue(Network.objects.get(slug=slug), **options)[1]


def issued_elsewhere(slug="epn_bz") -> tuple[NetworkToken, str]:
    """A token issued by another process: in the database, with no signal to this one."""
    _row, token = NetworkToken.issue(Network.objects.get(slug=slug))
    snapshot._state.checked_at = snapshot._clock()  # as if this process had read the snapshot just before
    return NetworkToken.objects.get(digest=token_digest(token).hex()), token


# What storing a new postback sends, whatever its token: tests/test_query_count.py explains each statement.
CREATED_POSTBACK_QUERIES = 6


def queries_of(action) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        action()
    return [query["sql"] for query in queries.captured_queries]


def test_an_admin_token_costs_no_query_beyond_an_environment_tokens(client, network_clock):
    admin_url = f"/webhook/{issue()}"
    client.get(admin_url, postback(uniq_id="warm-up"))  # reads the snapshot
    environment = queries_of(lambda: client.get(f"/webhook/{TEST_TOKEN}", postback(uniq_id="E-1")))
    admin = queries_of(lambda: client.get(admin_url, postback(uniq_id="A-1")))
    assert len(admin) == len(environment) == CREATED_POSTBACK_QUERIES, admin
    assert Order.objects.filter(uniq_id__in=["E-1", "A-1"], partner="epn_bz").count() == 2
    # At steady state the snapshot is read again every REFRESH_SECONDS, by the request that finds it old
    # (two SELECTs), which also writes the uses seen, once a minute (one UPDATE per token).
    network_clock.advance(snapshot.REFRESH_SECONDS)
    assert len(queries_of(lambda: client.get(admin_url, postback(uniq_id="A-2")))) == CREATED_POSTBACK_QUERIES + 2 + 1
    network_clock.advance(snapshot.REFRESH_SECONDS)
    assert len(queries_of(lambda: client.get(admin_url, postback(uniq_id="A-3")))) == CREATED_POSTBACK_QUERIES + 2


def test_a_flood_of_wrong_tokens_costs_no_query_but_the_periodic_refresh(client, network_clock, settings):
    settings.WEBHOOK_BAD_TOKEN_LIMIT = 0
    issue()

    def flood():
        for guess in range(200):
            assert client.get(f"/webhook/guess-{guess:040d}").status_code == 404

    assert len(queries_of(flood)) == 2  # the snapshot, read once for the token this test issued
    assert queries_of(flood) == []
    network_clock.advance(snapshot.REFRESH_SECONDS)
    refresh = queries_of(flood)
    assert len(refresh) == 2 and "partners_network" in refresh[0] and "partners_networktoken" in refresh[1]


def test_no_postback_waits_for_the_refresh_it_starts(client, network_clock, monkeypatch):
    """A frozen database would hold it for the read timeout (tests/test_db_failures.py shows the bound)."""
    asked = []
    monkeypatch.setattr(snapshot, "_ask", lambda: asked.append(1))
    network_clock.advance(snapshot.REFRESH_SECONDS)
    postbacks = queries_of(lambda: [client.get(f"/webhook/{TEST_TOKEN}", postback(uniq_id=str(n))) for n in range(3)])
    assert len(postbacks) == 3 * CREATED_POSTBACK_QUERIES, "the postbacks' own queries only"
    assert asked == [1], "one read asked of the refresher, for the requests that follow"


def test_a_token_issued_elsewhere_works_within_the_refresh_interval(client, network_clock):
    _row, token = issued_elsewhere()
    assert client.get(f"/webhook/{token}", postback()).status_code == 404
    network_clock.advance(snapshot.REFRESH_SECONDS - 0.1)
    assert client.get(f"/webhook/{token}", postback()).status_code == 404
    network_clock.advance(0.1)
    assert client.get(f"/webhook/{token}", postback()).status_code == 200


def test_a_token_revoked_elsewhere_is_refused_within_the_refresh_interval(client, network_clock):
    row, token = issued_elsewhere()
    network_clock.advance(snapshot.REFRESH_SECONDS)
    assert client.get(f"/webhook/{token}", postback(uniq_id="1")).status_code == 200
    NetworkToken.objects.filter(pk=row.pk).update(revoked_at=row.created_at)  # no signal: another process
    assert client.get(f"/webhook/{token}", postback(uniq_id="2")).status_code == 200
    network_clock.advance(snapshot.REFRESH_SECONDS)
    response = client.get(f"/webhook/{token}", postback(uniq_id="3"))
    assert (response.status_code, response.json()) == (404, {"error": "not found"})
    assert list(Order.objects.values_list("uniq_id", flat=True)) == ["1", "2"]


def test_a_change_saved_in_this_process_is_seen_at_once(client):
    token = issue()
    assert client.get(f"/webhook/{token}", postback(uniq_id="1")).status_code == 200
    row = NetworkToken.objects.get()
    row.revoked_at = row.created_at
    row.save()
    assert client.get(f"/webhook/{token}", postback(uniq_id="2")).status_code == 404


def test_several_tokens_of_a_network_are_live_at_once_beside_the_environments(client):
    tokens = [issue(), issue(), issue("admitad")]
    for number, token in enumerate(tokens[:2]):
        assert client.get(f"/webhook/{token}", postback(uniq_id=f"A-{number}")).json()["status"] == "created"
    assert client.get(f"/webhook/{TEST_TOKEN}", postback(uniq_id="E")).json()["status"] == "created"
    admitad = {"admitad_id": "AD-1", "payment_status": "approved", "subid": "7", "currency": "RUB"}
    assert client.get(f"/webhook/{tokens[2]}", admitad).json()["status"] == "created"
    assert dict(Order.objects.values_list("uniq_id", "partner")) == {"A-0": "epn_bz", "A-1": "epn_bz", "E": "epn_bz",
                                                                       "AD-1": "admitad"}


def test_a_token_that_implies_a_status_stores_it_with_the_delivery(client):
    network = actionpay_row()
    network.save()
    urls = {status: f"/webhook/{NetworkToken.issue(network, implied_status=status)[1]}"
            for status in (OrderStatus.WAITING, OrderStatus.COMPLETED, OrderStatus.REJECTED)}
    assert client.get(urls[OrderStatus.WAITING], ACTIONPAY).json()["status"] == "created"
    assert client.get(urls[OrderStatus.COMPLETED], ACTIONPAY).json()["status"] == "created"
    assert client.get(urls[OrderStatus.COMPLETED], ACTIONPAY).json()["status"] == "duplicate"
    assert list(Order.objects.order_by("pk").values_list("partner", "order_status", "original_status", "is_current")) \
        == [("actionpay", "waiting", "", False), ("actionpay", "completed", "", True)]
    assert list(Delivery.objects.order_by("pk").values_list("implied_status", flat=True)) == \
        ["waiting", "completed", "completed"]


def test_last_use_is_written_to_the_minute_not_per_postback(client, network_clock):
    token = issue()
    row = NetworkToken.objects.get()
    client.get(f"/webhook/{token}", postback(uniq_id="1"))
    assert NetworkToken.objects.get().last_used_at is None, "not written by the postback itself"
    network_clock.advance(snapshot.REFRESH_SECONDS)
    updates = [sql for sql in queries_of(lambda: client.get(f"/webhook/{token}", postback(uniq_id="2")))
               if "UPDATE" in sql and "partners_networktoken" in sql]
    assert len(updates) == 1
    first = NetworkToken.objects.get().last_used_at
    assert first is not None and first >= row.created_at
    # Within the minute, later uses wait; the refresh after it writes the latest.
    for number in range(3, 6):
        network_clock.advance(snapshot.REFRESH_SECONDS)
        client.get(f"/webhook/{token}", postback(uniq_id=str(number)))
    assert NetworkToken.objects.get().last_used_at == first
    network_clock.advance(snapshot.LAST_USE_WRITE_SECONDS)
    client.get(f"/webhook/{TEST_TOKEN}", postback(uniq_id="other"))  # any request refreshes
    assert NetworkToken.objects.get().last_used_at > first


def test_a_revoked_or_unknown_admin_token_is_a_near_miss_only_up_to_case(client, caplog):
    token = issue("admitad")
    with caplog.at_level(logging.WARNING, logger="epnhook.tokens"):
        assert client.get(f"/Webhook/{token}").status_code == 404
        assert client.get(f"/webhook/{token.swapcase()}").status_code == 404
        assert client.get(f"/webhook/{token[:-1]}").status_code == 404
    warnings = [r for r in caplog.records if r.name == "epnhook.tokens" and r.levelno == logging.WARNING]
    assert [(r.partner, r.mistakes) for r in warnings] == [("admitad", ["'webhook' in the wrong case"]),
                                                            ("admitad", ["the token in the wrong case"])]
    assert all(token.lower() not in r.getMessage().lower() for r in warnings)


# --- The snapshot's copy on disk, for a process that starts while the database is down -------------------

def fail_database(monkeypatch):
    def unavailable(previous):
        raise DatabaseError("(2003, \"Can't connect to MySQL server\")")

    monkeypatch.setattr(snapshot, "_from_database", unavailable)


def start_process(network_clock):
    """This process as a new worker finds it: no snapshot yet, and a refresh due."""
    snapshot._state = snapshot._State()
    network_clock.advance(snapshot.REFRESH_SECONDS)


def test_the_snapshot_is_saved_without_any_token_in_clear(client, settings, network_clock):
    token = issue(implied_status=OrderStatus.COMPLETED)
    actionpay_row().save()
    client.get("/webhook/anything")
    saved = json.loads((settings.SPOOL_DIR / snapshot.SNAPSHOT_FILE).read_text())
    assert [network["slug"] for network in saved["networks"]] == ["actionpay"]
    assert [(t["partner"], t["implied_status"], t["digest"]) for t in saved["tokens"]] == \
        [("epn_bz", "completed", token_digest(token).hex())]
    assert token not in json.dumps(saved)
    assert oct((settings.SPOOL_DIR / snapshot.SNAPSHOT_FILE).stat().st_mode & 0o777) == "0o600"


def test_a_process_started_during_an_outage_knows_the_admin_tokens_from_the_saved_copy(client, network_clock,
                                                                                        monkeypatch, caplog):
    token = issue()
    client.get("/webhook/anything")  # saves the copy
    start_process(network_clock)
    fail_database(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="epnhook.networks"):
        assert snapshot.current().tokens[0].digest == token_digest(token)
    assert [r.getMessage() for r in caplog.records if r.name == "epnhook.networks"] == [
        "cannot read the networks and admin tokens ((2003, \"Can't connect to MySQL server\")); using the last "
        "ones known"]
    assert client.get("/webhook/wrong-token").status_code == 404


def test_a_process_keeps_its_snapshot_while_the_database_is_down(client, network_clock, monkeypatch):
    token = issue()
    assert client.get(f"/webhook/{token}", postback(uniq_id="1")).status_code == 200
    fail_database(monkeypatch)
    network_clock.advance(snapshot.REFRESH_SECONDS)
    assert snapshot.current().tokens[0].digest == token_digest(token)
    assert client.get(f"/webhook/{token}", postback(uniq_id="2")).status_code == 200


def test_without_a_snapshot_an_unknown_token_is_answered_503_not_404(client, network_clock, monkeypatch, settings):
    (settings.SPOOL_DIR / snapshot.SNAPSHOT_FILE).unlink(missing_ok=True)
    start_process(network_clock)
    fail_database(monkeypatch)
    response = client.get("/webhook/maybe-an-admin-token")
    assert response.status_code == 503 and response["Retry-After"]
    assert response.json() == {"status": "unavailable", "error": "webhook tokens cannot be checked now; retry later"}
    # The environment's tokens need no database to be known.
    assert client.get(f"/webhook/{TEST_TOKEN}", postback()).status_code == 200
    # Not one attempt per request: the next try is a refresh interval later.
    calls = []
    monkeypatch.setattr(snapshot, "_from_database", lambda previous: calls.append(1) or snapshot.NOT_LOADED)
    client.get("/webhook/maybe-an-admin-token")
    assert calls == []
    network_clock.advance(snapshot.REFRESH_SECONDS)
    client.get("/webhook/maybe-an-admin-token")
    assert calls == [1]
