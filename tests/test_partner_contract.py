"""Cases every partner must satisfy, whatever its network's format.

They run against PARTNERS_UNDER_CONTRACT: every registered partner, and the networks configured as staff
would in the admin (tests/networks.py: built from a Network row), so that the same obligations hold for
them. A status is either a word the network sends, or implied by the URL it calls (ActionPay's, here as
its parser reads a postback to its "accepted" URL).
"""

import json
import re
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from partners.api import ApiClient
from partners.base import (
    DECIMAL_SEPARATORS,
    ISO_8601,
    STATUS_VALUES,
    STATUS_WORD_LENGTH,
    UNIX_SECONDS,
    ExtraKind,
    ParsedOrder,
    Partner,
    PayloadError,
)
from partners.models import Network
from partners.registry import PARTNERS, get_partner, partner_choices
from tests.networks import CONFIGURED_UNDER_CONTRACT, gdeslon_row

PARTNERS_UNDER_CONTRACT: list[Partner] = [*PARTNERS.values(), *CONFIGURED_UNDER_CONTRACT]
WEBHOOK_URL = "https://webhook.example.com/webhook/T0KEN"
CURRENCY_CODE = re.compile(r"[A-Z]{3}")

partners = pytest.mark.parametrize("partner", PARTNERS_UNDER_CONTRACT, ids=lambda partner: partner.slug)
# The partners whose status is a word in a parameter, and those whose URL implies it.
word_partners = pytest.mark.parametrize("partner", [p for p in PARTNERS_UNDER_CONTRACT if p.implied_status is None],
                                        ids=lambda partner: partner.slug)
implied_partners = pytest.mark.parametrize("partner", [p for p in PARTNERS_UNDER_CONTRACT if p.implied_status],
                                           ids=lambda partner: partner.slug)


class ReadRecorder(dict):
    """A postback's parameters that note every name the parser looks up."""

    def __init__(self, values):
        super().__init__(values)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def test_registry_maps_each_slug_to_its_parser():
    assert PARTNERS, "no partner registered"
    for slug, partner in PARTNERS.items():
        assert isinstance(partner, Partner)
        assert partner.slug == slug
        assert get_partner(slug) is partner
    with pytest.raises(KeyError):
        get_partner("no-such-network")


@pytest.mark.django_db
def test_the_registry_answers_a_configured_network_from_its_row():
    gdeslon_row().save()
    partner = get_partner("gdeslon")
    assert partner.config == gdeslon_row().config()
    assert get_partner("gdeslon") is partner, "built once, not per postback"
    assert partner_choices() == [*((slug, p.name) for slug, p in PARTNERS.items()), ("gdeslon", "GdeSlon")]
    Network.objects.get(slug="gdeslon").delete()
    with pytest.raises(KeyError):
        get_partner("gdeslon")


@partners
def test_the_example_parses_into_json_safe_extras(partner):
    parsed = partner.parse(dict(partner.example))
    assert isinstance(parsed, ParsedOrder)
    assert parsed.order_status in STATUS_VALUES and (parsed.original_status or partner.implied_status)
    assert set(parsed.extras) <= {extra.name for extra in partner.extra_fields}
    assert json.loads(json.dumps(parsed.extras)) == parsed.extras
    assert all(type(value) in (str, int, bool) for value in parsed.extras.values())


@partners
def test_the_parser_reads_only_its_declared_parameters(partner):
    params = ReadRecorder(partner.example)
    partner.parse(params)
    declared = set(partner.parameters)
    assert params.read <= declared, params.read - declared
    assert set(partner.example) <= declared
    assert partner.status_parameter in declared or partner.status_parameter is None
    assert {extra.name for extra in partner.extra_fields} <= declared


@partners
def test_the_url_to_paste_holds_every_parameter_as_a_macro_on_one_line(partner):
    url = partner.postback_url(WEBHOOK_URL)
    assert url.startswith(WEBHOOK_URL) and not re.search(r"\s", url)
    if partner.macro is None:  # the network appends its own parameters
        assert url == WEBHOOK_URL
        return
    before, after = partner.macro
    assert url == WEBHOOK_URL + "?" + "&".join(f"{name}={before}{name}{after}" for name in partner.parameters)
    assert len(set(partner.parameters)) == len(partner.parameters)


@word_partners
def test_statuses_map_each_network_word_to_ours_ignoring_case(partner):
    assert partner.statuses, "a partner accepts at least one status word"
    for word, status in partner.statuses.items():
        assert word == word.strip().lower() and 0 < len(word) <= STATUS_WORD_LENGTH, word
        assert status in STATUS_VALUES, (word, status)
        for sent in (word, word.upper(), word.title(), f"  {word.upper()} "):
            parsed = partner.parse({**partner.example, partner.status_parameter: sent})
            assert (parsed.order_status, parsed.original_status) == (status, sent.strip())


@word_partners
def test_an_unknown_status_word_is_a_payload_error_naming_the_status_parameter(partner):
    with pytest.raises(PayloadError) as caught:
        partner.parse({**partner.example, partner.status_parameter: "no-such-status"})
    assert caught.value.field == partner.status_parameter
    assert "no-such-status" in caught.value.message


@implied_partners
def test_an_implied_status_is_the_status_of_every_postback_with_no_word(partner):
    for word in ("no-such-status", "rejected", ""):
        parsed = partner.parse({**partner.example, "status": word, "order_status": word})
        assert (parsed.order_status, parsed.original_status) == (partner.implied_status, "")


@partners
def test_the_knobs_are_well_formed(partner):
    ZoneInfo(partner.timezone)
    assert partner.timestamp_formats
    for form in partner.timestamp_formats:
        assert form in (ISO_8601, UNIX_SECONDS) or "%" in form, form
    assert partner.decimal_separator in DECIMAL_SEPARATORS
    if partner.currencies is not None:
        assert partner.currencies and all(CURRENCY_CODE.fullmatch(code) for code in partner.currencies)
    if partner.default_currency is not None:
        assert partner.default_currency in (partner.currencies or [partner.default_currency])
        assert CURRENCY_CODE.fullmatch(partner.default_currency)
    names = [extra.name for extra in partner.extra_fields]
    assert len(set(names)) == len(names)
    assert all(extra.kind in ExtraKind.values and str(extra.label) for extra in partner.extra_fields)


@partners
def test_empty_payload_is_a_payload_error_naming_a_field(partner):
    with pytest.raises(PayloadError) as caught:
        partner.parse({})
    assert caught.value.field
    assert caught.value.message


@partners
def test_garbage_values_never_raise_anything_but_payload_error(partner):
    garbage = {"\x00": "\x00", "a" * 300: "b" * 5000, "revenue": "NaN", "order_status": "??"}
    with pytest.raises(PayloadError):
        partner.parse(garbage)
    with pytest.raises(PayloadError):
        partner.parse({**partner.example, **{name: "\x00??" for name in partner.parameters}})


@partners
def test_an_api_is_described_in_the_parsers_own_parameters(partner):
    """A partner with an API client reads its records into parameters its parser reads, one of them the id,
    with status words as well formed as its postback's; one without reads none."""
    if partner.api_client is None:
        with pytest.raises(PayloadError):
            partner.read_api_record({})
        return
    assert issubclass(partner.api_client, ApiClient) and partner.api_client.page_size > 0
    assert set(partner.api_fields) <= set(partner.parameters)
    assert {partner.api_id_parameter, partner.status_parameter} <= set(partner.api_fields)
    assert all(paths and all(isinstance(path, str) and path for path in paths) for paths in partner.api_fields.values())
    for word, status in (partner.api_statuses or partner.statuses).items():
        assert word == word.strip().lower() and status in STATUS_VALUES, word


@partners
def test_garbage_api_records_never_raise_anything_but_payload_error(partner):
    if partner.api_client is None:
        return
    tops = {path.split(".")[0] for paths in partner.api_fields.values() for path in paths}
    for record in ({}, [], None, "x", dict.fromkeys(tops, []), dict.fromkeys(tops, {"\x00": 1}),
                   dict.fromkeys(tops, True)):
        with pytest.raises(PayloadError):
            partner.read_api_record(record)
        assert isinstance(partner.api_record_id(record), str)


@pytest.mark.parametrize("partner", list(PARTNERS.values()), ids=list(PARTNERS))
def test_the_readme_shows_each_built_in_partners_url_to_paste_and_example(partner):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert partner.postback_url("https://<domain>/webhook/<token>") in readme
    assert urlencode(partner.example) in readme


def test_parsed_order_fields_all_exist_on_the_model():
    from orders.models import Order

    model_fields = {f.name for f in Order._meta.get_fields()}
    assert set(ParsedOrder.__dataclass_fields__) <= model_fields
