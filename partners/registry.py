"""The explicit list of partner networks. A new network is one import and one entry here."""

from .admitad import Admitad
from .base import Partner
from .epn_bz import EpnBz

PARTNERS: dict[str, Partner] = {partner.slug: partner for partner in (EpnBz(), Admitad())}


def get_partner(slug: str) -> Partner:
    """Return the parser registered under `slug`; KeyError for an unknown network."""
    return PARTNERS[slug]


def partner_choices() -> list[tuple[str, str]]:
    return [(slug, partner.name) for slug, partner in PARTNERS.items()]
