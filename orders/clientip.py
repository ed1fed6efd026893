"""Who sent a request, and whether that address may call a partner's webhook.

X-Forwarded-For is written by whoever sends it; only the entries appended by our own proxies are
facts. So the header is believed only when the TCP peer is one of TRUSTED_PROXIES, it is read from
the right, and the first address that is not a proxy of ours is the client. The leftmost value,
which any client can forge, is never used unless every hop after it is a trusted proxy.
"""

import ipaddress

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(request) -> str | None:
    """The client's address as text, or None when it cannot be known (for example a proxy of ours
    forwarded a value that is not an address). Used for Delivery.remote_addr and the allowlist."""
    peer = parse_ip(request.META.get("REMOTE_ADDR", ""))
    if peer is None or not _trusted(peer):
        return None if peer is None else str(peer)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if not forwarded.strip():
        return str(peer)  # the proxy itself is calling (or it forwarded nothing)
    for hop in reversed(forwarded.split(",")):
        address = parse_ip(hop)
        if address is None:
            return None
        if not _trusted(address):
            return str(address)
    return str(address)  # every hop is ours: the leftmost proxy is the one that saw the client


def address_allowed(partner: str, address: str | None) -> bool:
    """Whether `partner` may call from `address`: always when it has no allowlist; never from an
    unknown address when it has one."""
    networks = settings.WEBHOOK_ALLOWED_IPS.get(partner)
    if networks is None:
        return True
    parsed = parse_ip(address or "")
    return parsed is not None and any(parsed in network for network in networks)


def parse_ip(text: str) -> IPAddress | None:
    """An address from a header value, or None. IPv4-mapped IPv6 (::ffff:a.b.c.d, as dual-stack
    sockets report IPv4 peers) becomes plain IPv4 so that IPv4 ranges match it; a zone id
    (fe80::1%eth0) names an interface of the sender's machine and is refused."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if address.version == 6:
        if address.scope_id is not None:
            return None
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def _trusted(address: IPAddress) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)
