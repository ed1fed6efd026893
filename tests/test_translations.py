"""Every label and message of ours reads in Russian; the compiled catalogue is the committed one."""

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import translation

from orders.ingest import IngestResult
from orders.replay import describe
from tests.admin_helpers import load_orders, make_admin

# Notation rather than words: field names, codes, date forms, macro syntaxes, separators.
UNTRANSLATED = {"sub", "sub2", "sub3", "sub4", "sub5", "ID", "pk", "RUB", "USD", "EUR", "GBP", "TON", ".", ",",
                "YYYY-MM-DD HH:MM:SS", "DD.MM.YYYY HH:MM:SS", "{name}", "[[[name]]]", "{{name}}", "%name%", "$name"}


def our_labels():
    for app_label in ("orders", "partners"):
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
        assert describe(IngestResult("created", 7, 3)) == "Постбэк №7: сохранён как заказ №3."


@pytest.mark.django_db
def test_admin_speaks_russian_by_accept_language(client):
    load_orders()
    client.force_login(make_admin())
    response = client.get(reverse("admin:orders_order_changelist"), HTTP_ACCEPT_LANGUAGE="ru")
    content = response.content.decode()
    assert "Скачать CSV" in content and "текущий статус" in content.lower() and "подтверждён" in content
    assert "<h1>Заказы по текущему статусу</h1>" in content and "2 заказа" in content
    assert ">English</button>" in content and ">Русский</button>" in content


def filter_titles(content: str) -> list[str]:
    """The titles of a list's filters as shown, in order."""
    import re

    return [" ".join(title.split()) for title in re.findall(r"<summary>(.*?)</summary>", content, re.S)]


@pytest.mark.django_db
def test_filter_titles_read_right_in_russian_and_english(client):
    """Django titles a filter "By <verbose name>", which in Russian came out «По партнёр», «По статус»: each
    title is a phrase of its own, in the dative after «По»."""
    load_orders()
    client.force_login(make_admin())
    orders = reverse("admin:orders_order_changelist")
    page = client.get(orders, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert filter_titles(page) == ["Показать", "По сети", "По текущему статусу", "По валюте",
                                   "По наличию конфликта", "По просмотру конфликта", "По готовности к выплате",
                                   "По дате получения", "По дате заказа"]
    events = client.get(f"{orders}?rows=events", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert filter_titles(events)[2] == "По статусу"
    postbacks = client.get(reverse("admin:orders_delivery_changelist"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert filter_titles(postbacks) == ["По результату", "По источнику", "По сети", "По дате получения",
                                        "По времени получения"]
    assert "<h1>Постбэки</h1>" in postbacks and "оставк" not in postbacks
    runs = client.get(reverse("admin:orders_reconcilerun_changelist"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert filter_titles(runs) == ["По сети", "По состоянию"]
    events = client.get(reverse("admin:orders_outboundevent_changelist"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert filter_titles(events) == ["По состоянию", "По типу события", "По сети"]
    keys = client.get(reverse("admin:orders_apikey_changelist"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert filter_titles(keys) == ["По состоянию"] and "действует" in keys
    english = client.get(orders, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert filter_titles(english) == ["Show", "By network", "By current status", "By currency", "By conflict",
                                      "By conflict review", "By payout readiness", "By date received",
                                      "By date of order"]


def test_no_russian_label_calls_a_postback_a_delivery():
    """«Доставка» is what a shop does with a parcel: staff call the raw log's entries postbacks."""
    from pathlib import Path

    po = Path(__file__).resolve().parent.parent / "locale" / "ru" / "LC_MESSAGES" / "django.po"
    translations = [line for line in po.read_text(encoding="utf-8").splitlines()
                    if line.startswith(("msgstr", '"')) and "оставк" in line.lower()]
    assert translations == []


@pytest.mark.django_db
def test_the_network_pages_speak_russian(client):
    from partners.models import Network

    client.force_login(make_admin())
    network = Network.objects.get(slug="admitad")
    page = client.get(reverse("admin:partners_network_change", args=[network.pk]), HTTP_ACCEPT_LANGUAGE="ru")
    content = page.content.decode()
    assert "<h1>Партнёрская сеть Admitad</h1>" in content
    assert "URL для вставки в кабинет сети" in content and "Выпустить токен" in content
    assert "Проверить постбэк" in content and "Токены в окружении" in content
    added = client.get(reverse("admin:partners_network_add"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "<h1>Добавить партнёрскую сеть</h1>" in added and "Какой параметр несёт каждое поле" in added


def po_catalogue(path):
    """The translated entries of a .po file as gettext keys them in a compiled .mo (fuzzy and empty
    entries are left out, as msgfmt leaves them out)."""
    import ast

    entries, entry, section, fuzzy = [], {}, None, False
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith('"'):
            entry[section] += ast.literal_eval(line)
        elif line.startswith("msg"):
            section, _space, value = line.partition(" ")
            entry[section] = ast.literal_eval(value)
        elif not line.strip() and entry:
            entries.append((entry, fuzzy))
            entry, section, fuzzy = {}, None, False
        elif line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
    catalogue = {}
    for entry, fuzzy in entries:
        msgid = entry["msgid"] if "msgctxt" not in entry else f"{entry['msgctxt']}\x04{entry['msgid']}"
        translations = {key: value for key, value in entry.items() if key.startswith("msgstr")}
        if (fuzzy and msgid) or not all(translations.values()):
            continue
        if "msgid_plural" in entry:
            catalogue.update({(msgid, int(key[7:-1])): value for key, value in translations.items()})
        else:
            catalogue[msgid] = translations["msgstr"]
    return catalogue


def test_committed_mo_is_compiled_from_the_committed_po():
    """Both are committed and deployed as they are: a .po edited without compilemessages would
    silently show the old (or English) text."""
    import gettext
    from pathlib import Path

    directory = Path(__file__).resolve().parent.parent / "locale" / "ru" / "LC_MESSAGES"
    with (directory / "django.mo").open("rb") as compiled:
        compiled_catalogue = gettext.GNUTranslations(compiled)._catalog
    catalogue = po_catalogue(directory / "django.po")
    # The header ("" entry) carries creation dates that makemessages rewrites; the messages are what counts.
    compiled_catalogue.pop("")
    catalogue.pop("")
    assert len(catalogue) > 90 and compiled_catalogue == catalogue
