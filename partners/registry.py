"""Every partner network's parser: the built-in ones, listed here explicitly (a new one in code is one
import and one entry in PARTNERS), and those staff configured in the admin (partners.snapshot)."""

from . import snapshot
from .admitad import Admitad
from .base import Partner
from .epn_bz import EpnBz

# The networks whose parser is code. A configured network never takes one of their slugs.
PARTNERS: dict[str, Partner] = {partner.slug: partner for partner in (EpnBz(), Admitad())}


def get_partner(slug: str) -> Partner:
    """Return the parser of network `slug`, built in or configured; KeyError for an unknown network."""
    partner = PARTNERS.get(slug)
    return partner if partner is not None else snapshot.current().networks[slug]


def find_partner(slug: str) -> Partner | None:
    """The parser of network `slug`, or None for an unknown network."""
    try:
        return get_partner(slug)
    except KeyError:
        return None


def partner_choices() -> list[tuple[str, str]]:
    """(slug, name) of every network: the built-in ones, then the configured ones by name."""
    configured = sorted(snapshot.current().networks.values(), key=lambda partner: partner.name.lower())
    return [(partner.slug, partner.name) for partner in (*PARTNERS.values(), *configured)]
