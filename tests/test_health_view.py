import pytest
from django.db import OperationalError

from orders import spool, spooldrain
from orders.models import Order
from tests.factories import raw_get

pytestmark = pytest.mark.django_db


def test_health_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["spool_backlog"] == 0


@pytest.mark.django_db(transaction=True)  # the drain thread must see (and write) committed data
def test_health_reports_spool_backlog_then_drains_it(client, settings, tmp_path, monkeypatch):
    settings.SPOOL_DIR = tmp_path
    monkeypatch.setattr(spooldrain, "_last_start", float("-inf"))
    spool.write(raw_get())
    assert client.get("/health").json()["spool_backlog"] == 1
    spooldrain._drain_thread.join(10)
    assert spool.backlog() == 0
    assert Order.objects.get().uniq_id == "EPN-12345"


def test_health_is_503_when_the_database_does_not_answer(client, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def refuse(self, sql, params=None):
        raise OperationalError(2003, "Can't connect")

    monkeypatch.setattr(CursorWrapper, "execute", refuse)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "error"


def test_health_never_shows_secrets(client, settings):
    text = client.get("/health").content.decode()
    for _, token in settings.WEBHOOK_TOKENS:
        assert token not in text
    assert settings.SECRET_KEY not in text
