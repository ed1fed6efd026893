"""Cases every registered partner parser must satisfy, whatever its network's format."""

import pytest

from partners.base import OrderStatus, ParsedOrder, Partner, PayloadError
from partners.registry import PARTNERS, get_partner

partners = pytest.mark.parametrize("partner", list(PARTNERS.values()), ids=list(PARTNERS))


def test_registry_maps_each_slug_to_its_parser():
    assert PARTNERS, "no partner registered"
    for slug, partner in PARTNERS.items():
        assert isinstance(partner, Partner)
        assert partner.slug == slug
        assert get_partner(slug) is partner
    with pytest.raises(KeyError):
        get_partner("no-such-network")


@partners
def test_aliases_lead_to_known_statuses(partner):
    for alias, status in partner.status_aliases.items():
        assert alias == alias.lower()
        assert status in OrderStatus.values


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


@partners
def test_timezone_is_a_real_zone(partner):
    from zoneinfo import ZoneInfo

    ZoneInfo(partner.timezone)


def test_parsed_order_fields_all_exist_on_the_model():
    from orders.models import Order

    model_fields = {f.name for f in Order._meta.get_fields()}
    assert set(ParsedOrder.__dataclass_fields__) <= model_fields
