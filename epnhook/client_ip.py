"""The client's address as our own reverse proxy saw it, for login throttling (django-axes).

Behind TRUSTED_PROXY_COUNT proxies that each append the address they received from to
TRUSTED_PROXY_HEADER (Traefik does, in X-Forwarded-For), the client's address is that many entries
from the right of the header. Entries further left were written by the client and can be forged, so
they are never used. With no proxy (count 0), or when the header is shorter than the count (the
request did not come through the proxies), the socket's address REMOTE_ADDR is used.
"""

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    remote_addr = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count == 0:
        return remote_addr
    meta_key = "HTTP_" + settings.TRUSTED_PROXY_HEADER.upper().replace("-", "_")
    entries = [entry.strip() for entry in request.META.get(meta_key, "").split(",") if entry.strip()]
    if len(entries) < count:
        return remote_addr
    candidate = entries[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote_addr
