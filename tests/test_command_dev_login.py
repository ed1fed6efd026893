"""manage.py dev_login (run by `make run`): the local admin, its password file, and what it prints."""

import os
import re
import stat
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command
from django.core.management.base import CommandError

from orders.models import Order
from tests.settings import TEST_TOKEN

pytestmark = pytest.mark.django_db


def dev_login(settings, tmp_path) -> str:
    settings.DEBUG = True
    settings.BASE_DIR = tmp_path  # the password file goes to BASE_DIR/var
    out = StringIO()
    call_command("dev_login", "--port", "9000", stdout=out)
    return out.getvalue()


def test_creates_the_admin_with_a_password_that_logs_in_and_meets_the_policy(settings, tmp_path, monkeypatch):
    for name in ("chmod", "fchmod", "lchmod"):
        monkeypatch.setattr(os, name, lambda *args, **kwargs: pytest.fail("the mode is set after creation"),
                            raising=False)
    umask = os.umask(0)
    try:
        output = dev_login(settings, tmp_path)
    finally:
        os.umask(umask)
    password = re.search(r"^Login:    admin / (\S+)$", output, re.M).group(1)
    user = User.objects.get(username="admin")
    assert user.is_superuser and user.check_password(password)
    validate_password(password, user)
    password_file = tmp_path / "var" / "dev-admin-password"
    assert password_file.read_text() == password
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600  # born private: chmod was not available
    assert f"http://127.0.0.1:9000/webhook/{TEST_TOKEN}" in output


def test_prints_each_networks_url_to_paste_and_a_curl_that_stores_its_example(settings, tmp_path, client):
    admitad_token = "admitad-dev-token-0123456789abcdefghijklmnopqrstuvwxyz"
    settings.WEBHOOK_TOKENS = [*settings.WEBHOOK_TOKENS, ("admitad", admitad_token)]
    output = dev_login(settings, tmp_path)
    pasted = dict(re.findall(r"^Webhook URL \((.+?)\): (\S+)$", output, re.M))
    assert pasted["EPN.bz"] == f"http://127.0.0.1:9000/webhook/{TEST_TOKEN}"  # the first of its tokens
    assert pasted["Admitad"].startswith(f"http://127.0.0.1:9000/webhook/{admitad_token}?admitad_id=[[[admitad_id]]]&")
    curls = re.findall(r"^Try it:   curl '(http://127\.0\.0\.1:9000)(/webhook/[^']+)'$", output, re.M)
    assert len(curls) == 2
    for _base, path in curls:
        response = client.get(path)  # what the curl sends
        assert response.status_code == 200 and response.json()["status"] == "created", response.content
    assert sorted(Order.objects.values_list("partner", flat=True)) == ["admitad", "epn_bz"]


def test_without_a_token_it_says_how_to_get_one(settings, tmp_path):
    settings.WEBHOOK_TOKENS = []
    with pytest.raises(CommandError, match="No webhook token"):
        dev_login(settings, tmp_path)


def test_a_second_run_prints_the_same_login(settings, tmp_path):
    first = dev_login(settings, tmp_path)
    assert dev_login(settings, tmp_path) == first


def test_refuses_to_run_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="for development"):
        call_command("dev_login")
