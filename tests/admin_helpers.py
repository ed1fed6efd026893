"""Users, data and fixtures shared by the admin tests."""

import pytest
from django.contrib.auth.models import Group, User

from orders.ingest import ingest
from tests.factories import raw_get

PASSWORD = "correct horse battery staple"


def make_admin(username="boss") -> User:
    return User.objects.create_superuser(username, f"{username}@example.com", PASSWORD)


def make_viewer(username="watcher") -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="viewer"))
    return user


@pytest.fixture
def staff_client(client):
    """The test client, logged in as a superuser."""
    client.force_login(make_admin())
    return client


def load_orders():
    """Two orders: EPN-1 went waiting -> completed -> a late pending; EPN-2 (USD) is waiting with a conflict."""
    results = [
        ingest(raw_get(uniq_id="EPN-1", order_number="SHOP-1", click_id="user-1", order_status="waiting")),
        ingest(raw_get(uniq_id="EPN-1", order_number="SHOP-1", click_id="user-1", order_status="completed")),
        ingest(raw_get(uniq_id="EPN-1", order_number="SHOP-1", click_id="user-1", order_status="pending")),
        ingest(raw_get(uniq_id="EPN-2", order_number="SHOP-2", click_id="user-2", currency="USD", revenue="10.5",
                       commission_fee="1.25")),
        ingest(raw_get(uniq_id="EPN-2", order_number="SHOP-2", click_id="user-2", currency="USD", revenue="11",
                       commission_fee="1.25")),
    ]
    ingest(raw_get(revenue="not money"))
    return results
