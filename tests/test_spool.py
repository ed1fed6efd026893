"""The spool and its drain, called directly or started by a stored postback (tests/test_db_failures.py
runs them under gunicorn)."""

import fcntl
import os
import time

import pytest
from django.db import OperationalError

from orders import alerts, spool, spooldrain
from orders import ingest as ingest_module
from orders.ingest import ingest
from orders.models import Delivery, Order
from tests.factories import postback, raw_get


@pytest.fixture(autouse=True)
def own_dirs(settings, tmp_path):
    """A fresh spool and a fresh alert throttle for each test."""
    settings.SPOOL_DIR = tmp_path / "spool"
    settings.ALERT_STATE_DIR = tmp_path / "alerts"


def spooled(*uniq_ids: str) -> list[str]:
    return [spool.write(raw_get(uniq_id=uniq_id)) for uniq_id in uniq_ids]


@pytest.mark.django_db
def test_entry_is_written_whole_and_private():
    (entry,) = spooled("A")
    path = spool.incoming_dir() / f"{entry}.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list(spool.incoming_dir().glob(".*.tmp"))
    assert spool.backlog() == 1


@pytest.mark.django_db
def test_sender_retry_stored_first_then_drain_stores_no_second_order():
    spooled("A")
    assert ingest(raw_get(uniq_id="A")).outcome == "created"  # the network's own retry won the race
    report = spooldrain.drain()
    assert report.stored == 1 and report.outcomes == {"duplicate": 1}
    assert Order.objects.count() == 1
    assert list(Delivery.objects.order_by("pk").values_list("source", "outcome")) == [
        ("http", "created"), ("spool", "duplicate")]


@pytest.mark.django_db
def test_corrupt_entry_is_quarantined_with_an_alert_and_its_neighbours_stored(mailoutbox):
    first, middle, last = spooled("A", "B", "C")
    (spool.incoming_dir() / f"{middle}.json").write_bytes(b'{"partner": "epn_bz", "meth')
    report = spooldrain.drain()
    alerts.wait_for_pending()
    assert (report.stored, report.quarantined, report.remaining) == (2, 1, 0)
    assert sorted(Order.objects.values_list("uniq_id", flat=True)) == ["A", "C"]
    assert [path.name for path in spool.quarantine_dir().iterdir()] == [f"{middle}.json"]
    assert len(mailoutbox) == 1 and "quarantined" in mailoutbox[0].subject


@pytest.mark.django_db
def test_stale_temporary_file_is_quarantined_but_a_fresh_one_left_alone():
    spooled("A")
    stale = spool.incoming_dir() / ".1-stale.tmp"
    fresh = spool.incoming_dir() / ".2-fresh.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"{")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    report = spooldrain.drain()
    assert report.quarantined == 1 and report.stored == 1
    assert fresh.exists() and not stale.exists()


@pytest.mark.django_db
def test_transient_error_stops_the_drain_and_keeps_every_entry(monkeypatch):
    spooled("A", "B")

    def down(raw, spool_id=None):
        raise OperationalError(2003, "Can't connect to server")

    monkeypatch.setattr(ingest_module, "store", down)
    report = spooldrain.drain()
    assert report.stored == 0 and report.remaining == 2 and "2003" in report.error
    assert Delivery.objects.count() == 0


@pytest.mark.django_db
def test_entry_that_hits_a_bug_becomes_an_error_delivery_and_does_not_block_the_rest(monkeypatch, mailoutbox):
    spooled("A", "bug", "C")
    real_store = ingest_module.store

    def buggy(raw, spool_id=None):
        if "uniq_id=bug" in raw.query_string:
            raise ZeroDivisionError("a bug of ours")
        return real_store(raw, spool_id=spool_id)

    monkeypatch.setattr(ingest_module, "store", buggy)
    report = spooldrain.drain()
    alerts.wait_for_pending()
    assert (report.stored, report.failed, report.remaining) == (2, 1, 0)
    failed = Delivery.objects.get(outcome="error")
    assert failed.spool_id and "ZeroDivisionError" in failed.error and "uniq_id=bug" in failed.query_string
    assert len(mailoutbox) == 1 and "error delivery" in mailoutbox[0].subject


@pytest.mark.django_db
def test_a_second_drain_waits_for_the_first():
    spooled("A")
    spool.settings.SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    with open(spool.settings.SPOOL_DIR / ".drain.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert spooldrain.drain().busy
    assert spooldrain.drain().stored == 1


@pytest.mark.django_db(transaction=True)
def test_first_successful_write_after_an_outage_drains_the_spool(monkeypatch, client, webhook_url):
    monkeypatch.setattr(spooldrain, "_last_start", float("-inf"))
    spooled("A", "B")
    assert client.get(webhook_url, postback(uniq_id="C")).json()["status"] == "created"
    spooldrain._drain_thread.join(10)
    assert spool.backlog() == 0
    assert sorted(Order.objects.values_list("uniq_id", flat=True)) == ["A", "B", "C"]


@pytest.mark.django_db
def test_nothing_to_drain_starts_no_thread(monkeypatch):
    monkeypatch.setattr(spooldrain, "_drain_thread", None)
    monkeypatch.setattr(spooldrain, "_last_start", float("-inf"))
    spooldrain.drain_in_background_if_pending()
    assert spooldrain._drain_thread is None


# --- has_pending: the directory's mtime saves the scan while nothing changes -------------------------

@pytest.fixture
def scans(monkeypatch):
    """How often the incoming directory was scanned; the mtime cache starts empty."""
    monkeypatch.setattr(spool, "_empty_at_mtime", None)
    calls = []
    scandir = os.scandir

    def counting(path="."):
        if os.fspath(path) == os.fspath(spool.incoming_dir()):
            calls.append(path)
        return scandir(path)

    monkeypatch.setattr(spool.os, "scandir", counting)
    return calls


def settle(directory):
    """Date the directory's last change 10 s back: older than the coarse clock tick has_pending allows for."""
    past = time.time() - 10
    os.utime(directory, (past, past))


def test_settled_empty_directory_is_not_scanned_again(scans):
    spool.incoming_dir().mkdir(parents=True)
    settle(spool.incoming_dir())
    assert [spool.has_pending() for _ in range(5)] == [False] * 5
    assert len(scans) == 1
    # A temporary file (a write in progress) is no entry, but it changes the directory: scanned again.
    (spool.incoming_dir() / ".1-partial.tmp").write_bytes(b"{")
    assert spool.has_pending() is False
    assert len(scans) == 2
    settle(spool.incoming_dir())
    assert [spool.has_pending() for _ in range(3)] == [False] * 3
    assert len(scans) == 3


def test_entry_written_after_the_directory_was_seen_empty_is_found(scans):
    spool.incoming_dir().mkdir(parents=True)
    settle(spool.incoming_dir())
    assert spool.has_pending() is False
    assert spool._empty_at_mtime == spool.incoming_dir().stat().st_mtime_ns  # the look was cached
    spooled("A")
    assert spool.has_pending() is True
    assert len(scans) == 2


def test_directory_with_an_entry_is_scanned_every_time(scans):
    spooled("A")
    settle(spool.incoming_dir())
    assert [spool.has_pending() for _ in range(3)] == [True] * 3
    assert len(scans) == 3
    # Drained: the unlink changes the directory, so the next look sees it empty.
    spool.pending()[0].unlink()
    assert spool.has_pending() is False


def test_fresh_mtime_is_not_cached(scans):
    """An mtime within the last second could be shared by a change still to come in the same tick."""
    spool.incoming_dir().mkdir(parents=True)  # modified just now
    assert [spool.has_pending() for _ in range(3)] == [False] * 3
    assert spool._empty_at_mtime is None
    assert len(scans) == 3
    # Once the same mtime is a second old it is cached.
    settle(spool.incoming_dir())
    assert [spool.has_pending() for _ in range(3)] == [False] * 3
    assert len(scans) == 4


def test_missing_directory_is_nothing_pending(scans):
    assert not spool.incoming_dir().exists()
    assert spool.has_pending() is False
    assert spool._empty_at_mtime is None
    spooled("A")  # creates it
    assert spool.has_pending() is True


@pytest.mark.django_db(transaction=True)
def test_write_after_the_cached_empty_look_is_drained_by_the_next_stored_postback(monkeypatch, scans, client,
                                                                                  webhook_url):
    monkeypatch.setattr(spooldrain, "_last_start", float("-inf"))
    monkeypatch.setattr(spooldrain, "_drain_thread", None)
    spool.incoming_dir().mkdir(parents=True)
    settle(spool.incoming_dir())
    # The first postback looks, finds nothing and caches the mtime.
    assert client.get(webhook_url, postback(uniq_id="A")).json()["status"] == "created"
    assert spooldrain._drain_thread is None and spool._empty_at_mtime is not None
    spooled("B")  # the database failed for another worker meanwhile
    monkeypatch.setattr(spooldrain, "_last_start", float("-inf"))
    assert client.get(webhook_url, postback(uniq_id="C")).json()["status"] == "created"
    spooldrain._drain_thread.join(10)
    assert spool.backlog() == 0
    assert sorted(Order.objects.values_list("uniq_id", flat=True)) == ["A", "B", "C"]
