"""Mapping a webhook URL token to its network, in constant time; limiting wrong guesses; telling the
operator about a sender that calls a near miss of its webhook URL; and each network's webhook URL.

A token is either the environment's (settings.WEBHOOK_TOKENS, in clear) or one issued in the admin
(partners.models.NetworkToken, known only by its SHA-256 through this process's partners.snapshot). Both
kinds are compared alike: the candidate's digest against every token's digest.
"""

import hmac
import logging
import re
import time
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import reverse

from . import snapshot
from .base import Partner
from .models import token_digest
from .registry import find_partner

log = logging.getLogger("epnhook.tokens")

# RFC 3986 unreserved characters: the only ones that reach the view exactly as configured.
URL_SAFE_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")


class TokenMatch(NamedTuple):
    """What a token says of a postback: whose it is, and the status its URL implies ("" for none)."""

    partner: str
    implied_status: str = ""
    token_id: int | None = None  # an admin token's NetworkToken id; None for the environment's


def partner_for_token(candidate: str) -> TokenMatch | None:
    """The network whose token `candidate` is, or None; a use of an admin token is noted for its last use.

    Both sides are hashed first so every comparison is between equal-length digests, and every token,
    the environment's and the admin's, is compared (no early exit), so the time taken says nothing
    about how close a guess was or which token matched.
    """
    found = _match(token_digest(candidate), _lookup_table(snapshot.current(), exact=True))
    if found is not None and found.token_id is not None:
        snapshot.record_use(found.token_id)
    return found


def token_in_url(url: str) -> TokenMatch | None:
    """The live token a pasted webhook URL (https://<domain>/webhook/<token>?...) holds, or None; not
    counted as a use of the token."""
    found = _WEBHOOK_SEGMENT.search(urlsplit(url.strip()).path)
    if found is None:
        return None
    return _match(token_digest(unquote(found[1])), _lookup_table(snapshot.current(), exact=True))


_WEBHOOK_SEGMENT = re.compile(r"/webhook/+([^/]+)")


def tokens_known() -> bool:
    """Whether this process knows the admin's tokens: False only while it has neither read them from the
    database nor found their saved copy, when an unknown token may still be a valid one."""
    return snapshot.current().loaded


def webhook_urls(base_url: str, tokens) -> list[tuple[Partner, str]]:
    """Each network that has a token among `tokens` ((partner, token) pairs, as settings.WEBHOOK_TOKENS),
    with its webhook URL at `base_url` (such as https://webhook.example.com) and its first token, in the
    order the tokens are configured. A token of an unknown partner is left out (system check E001 names it).
    """
    first_tokens = {}
    for partner, token in tokens:
        first_tokens.setdefault(partner, token)
    found = ((find_partner(slug), token) for slug, token in first_tokens.items())
    return [(partner, webhook_url(base_url, token)) for partner, token in found if partner is not None]


def webhook_url(base_url: str, token: str) -> str:
    return base_url + reverse("webhook", args=[token])


def _match(digest: bytes, table: tuple[tuple[bytes, TokenMatch], ...]) -> TokenMatch | None:
    found = None
    for known, match in table:
        if hmac.compare_digest(digest, known):
            found = match
    return found


# The last table built, with the environment's and the snapshot's tokens it was built from: rebuilt when
# either changes (compared by identity, so that a postback pays no hashing of tuples).
_tables: dict[bool, tuple[tuple, tuple, tuple]] = {}


def _lookup_table(current: snapshot.Snapshot, *, exact: bool) -> tuple[tuple[bytes, TokenMatch], ...]:
    """(digest, match) for every token, the environment's first; `exact=False`: the digests of the tokens in
    lower case, for near_miss."""
    environment = _environment_digests() if exact else _casefolded_environment_digests()
    built = _tables.get(exact)
    if built is not None and built[0] is environment and built[1] is current.tokens:
        return built[2]
    table = (*environment, *(
        (token.digest if exact else token.casefolded_digest, TokenMatch(token.partner, token.implied_status, token.id))
        for token in current.tokens
    ))
    _tables[exact] = (environment, current.tokens, table)
    return table


@lru_cache(maxsize=1)
def _environment_digests() -> tuple[tuple[bytes, TokenMatch], ...]:
    return tuple((token_digest(token), TokenMatch(partner)) for partner, token in settings.WEBHOOK_TOKENS)


@lru_cache(maxsize=1)
def _casefolded_environment_digests() -> tuple[tuple[bytes, TokenMatch], ...]:
    return tuple((token_digest(token.casefold()), TokenMatch(partner)) for partner, token in settings.WEBHOOK_TOKENS)


@receiver(setting_changed)
def _forget_tokens(setting, **kwargs):
    if setting == "WEBHOOK_TOKENS":
        _environment_digests.cache_clear()
        _casefolded_environment_digests.cache_clear()


# A webhook path in any case and with any number of slashes: "/Webhook/", "//webhook//".
_ANY_WEBHOOK_PATH = re.compile(r"(/+)(webhook)(/+)(.*)", re.IGNORECASE | re.DOTALL)


def near_miss(path: str) -> tuple[str, list[str]] | None:
    """For a path that nearly is a network's webhook URL, that network and what is wrong with the path;
    None for the right URL and for any path that holds no token, the environment's or the admin's.

    A near miss is the /webhook/ prefix in another case or with doubled slashes, characters around the
    token (a quote, a space), more path after it, or the token itself in another case. The token is
    compared as partner_for_token compares it, hashed and with every token, so the time taken says
    nothing about a guess that is not a token up to case.
    """
    match = _ANY_WEBHOOK_PATH.fullmatch(path)
    if match is None:
        return None
    leading, word, middle, rest = match.groups()
    segment, *after = rest.split("/")
    runs = URL_SAFE_TOKEN.findall(segment)
    if len(runs) != 1:
        return None
    core = runs[0]
    mistakes = []
    current = snapshot.current()
    found = _match(token_digest(core), _lookup_table(current, exact=True))
    if found is None:
        found = _match(token_digest(core.casefold()), _lookup_table(current, exact=False))
        if found is None:
            return None
        mistakes.append("the token in the wrong case")
    if word != "webhook":
        mistakes.append("'webhook' in the wrong case")
    if leading != "/" or middle != "/" or after.count("") > 1:
        mistakes.append("a doubled slash")
    if core != segment:
        mistakes.append("stray characters around the token")
    if any(after):
        mistakes.append("more path after the token")
    return (found.partner, mistakes) if mistakes else None


def log_near_miss(path: str, address: str | None) -> None:
    """Warn, without the token, when a request answered 404 was for a near miss of a webhook URL: a
    sender that calls it loses every postback, and this line is how the operator finds out."""
    found = near_miss(path)
    if found is None:
        return
    partner, mistakes = found
    log.warning(
        "a request from %s for the %s webhook was answered 404: its URL has %s. Every postback sent to "
        "that URL is lost; the sender must use the webhook URL exactly as configured",
        address or "an unknown address", partner, ", ".join(mistakes),
        extra={"partner": partner, "client_ip": address, "mistakes": mistakes},
    )


# Wrong tokens are counted per client address in fixed one-minute windows.
WRONG_TOKEN_WINDOW_SECONDS = 60


def wrong_token_over_limit(address: str | None) -> bool:
    """Count one wrong token from `address`; True once it has sent more than WEBHOOK_BAD_TOKEN_LIMIT
    in the current minute.

    Only wrong tokens are counted, after the lookup, so a sender with a valid token is never held
    back by a scanner (or a stale, rotated-out token) sharing its address. The counter lives in the
    default cache: with the local-memory cache it is per worker process, which bounds a scanner to
    limit x workers guesses a minute; a shared cache makes it one limit for the whole service.
    The candidate token itself is never logged: a near miss is most of a real token.
    """
    limit = settings.WEBHOOK_BAD_TOKEN_LIMIT
    if not limit:
        return False
    window = int(time.time() // WRONG_TOKEN_WINDOW_SECONDS)
    key = f"epnhook:wrong-token:{address or 'unknown'}:{window}"
    cache.add(key, 0, timeout=WRONG_TOKEN_WINDOW_SECONDS * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, count := 1, timeout=WRONG_TOKEN_WINDOW_SECONDS * 2)
    log.info("wrong webhook token from %s (%d this minute)", address or "an unknown address", count,
             extra={"client_ip": address, "wrong_tokens": count})
    if count == limit + 1:
        log.warning(
            "%s sent more than %d wrong webhook tokens this minute; answering 429 until the minute is over",
            address or "an unknown address", limit, extra={"client_ip": address, "wrong_tokens": count},
        )
    return count > limit


def seconds_left_in_window() -> int:
    return WRONG_TOKEN_WINDOW_SECONDS - int(time.time()) % WRONG_TOKEN_WINDOW_SECONDS
