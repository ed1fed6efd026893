"""Staff passwords: Django's standard validators, wherever a password is set through Django."""

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.admin_helpers import PASSWORD, make_admin

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("password", "reason"), [
    ("Xq7!p", "too short"),
    ("password123", "too common"),
    ("8405716293", "entirely numeric"),
    ("bossman-2", "too similar to the username"),
])
def test_weak_passwords_are_refused(password, reason):
    with pytest.raises(ValidationError, match=reason):
        validate_password(password, User(username="bossman", email="bossman@example.com"))


def test_a_long_uncommon_password_passes():
    validate_password(PASSWORD, User(username="boss"))


def test_staff_cannot_change_to_a_weak_password_in_the_admin(client):
    user = make_admin()
    client.force_login(user)
    weak = {"old_password": PASSWORD, "new_password1": "password123", "new_password2": "password123"}
    response = client.post(reverse("admin:password_change"), weak)
    assert response.status_code == 200 and "This password is too common." in response.text
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
