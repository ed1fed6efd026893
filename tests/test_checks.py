"""System checks that catch configurations which would break the 5 s answer bound."""

from orders.checks import check_ingest_deadline


def test_default_timeouts_fit_under_the_deadline():
    assert check_ingest_deadline(None) == []


def test_timeouts_that_overrun_the_deadline_are_reported(settings):
    settings.DATABASE_READ_TIMEOUT = 0  # "no limit", meant for a one-off migration
    (warning,) = check_ingest_deadline(None)
    assert warning.id == "epnhook.W010" and "INGEST_DEADLINE" in warning.msg
    settings.DATABASE_READ_TIMEOUT = 3
    settings.DATABASE_CONNECT_TIMEOUT = 2
    assert [w.id for w in check_ingest_deadline(None)] == ["epnhook.W010"]
