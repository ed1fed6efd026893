"""Every label and message of ours reads in Russian; the compiled catalogue is the committed one."""

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import translation

from orders.admin import describe_replay
from orders.ingest import IngestResult
from tests.admin_helpers import load_orders, make_admin

UNTRANSLATED = {"sub", "sub2", "sub3", "sub4", "sub5", "ID", "RUB", "USD", "EUR", "GBP", "TON"}


def our_labels():
    for app_label in ("orders",):
        config = apps.get_app_config(app_label)
        yield config.verbose_name
        for model in config.get_models():
            yield model._meta.verbose_name
            yield model._meta.verbose_name_plural
            for field in model._meta.get_fields():
                if hasattr(field, "verbose_name"):
                    yield field.verbose_name
                for _value, label in getattr(field, "choices", None) or ():
                    yield label


def test_every_verbose_name_and_choice_has_a_russian_translation():
    with translation.override("en"):
        labels = {str(label) for label in our_labels()} - UNTRANSLATED
    with translation.override("ru"):
        untranslated = sorted(label for label in labels if str(translation.gettext(label)) == label)
    assert untranslated == []


def test_replay_messages_are_translated():
    with translation.override("ru"):
        assert describe_replay(7, IngestResult("created", 7, 3)) == "Доставка №7: сохранена как заказ №3."


@pytest.mark.django_db
def test_admin_speaks_russian_by_accept_language(client):
    load_orders()
    client.force_login(make_admin())
    response = client.get(reverse("admin:orders_order_changelist"), HTTP_ACCEPT_LANGUAGE="ru")
    content = response.content.decode()
    assert "Скачать CSV" in content and "текущий статус" in content.lower() and "подтверждён" in content
    assert "<h1>Заказы</h1>" in content and ">English</button>" in content and ">Русский</button>" in content
