"""Mapping a webhook URL token to its partner, in constant time; limiting wrong guesses; telling the
operator about a sender that calls a near miss of its webhook URL; and each network's webhook URL."""

import hashlib
import hmac
import logging
import re
import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import reverse

from partners.base import Partner
from partners.registry import PARTNERS

from .checks import URL_SAFE_TOKEN

log = logging.getLogger("epnhook.tokens")


def partner_for_token(candidate: str) -> str | None:
    """The partner whose token `candidate` is, or None.

    Both sides are hashed first so every comparison is between equal-length digests, and every
    configured token is compared (no early exit), so the time taken says nothing about how close a
    guess was or which token matched.
    """
    return _match(candidate, _token_digests())


def webhook_urls(base_url: str, tokens) -> list[tuple[Partner, str]]:
    """Each network that has a token among `tokens` ((partner, token) pairs, as settings.WEBHOOK_TOKENS),
    with its webhook URL at `base_url` (such as https://webhook.example.com) and its first token, in the
    order the tokens are configured. A token of an unknown partner is left out (system check E001 names it).
    """
    first_tokens = {}
    for partner, token in tokens:
        first_tokens.setdefault(partner, token)
    return [(PARTNERS[slug], base_url + reverse("webhook", args=[token]))
            for slug, token in first_tokens.items() if slug in PARTNERS]


def _match(candidate: str, digests: tuple[tuple[str, bytes], ...]) -> str | None:
    digest = _digest(candidate)
    found = None
    for partner, token_digest in digests:
        if hmac.compare_digest(digest, token_digest):
            found = partner
    return found


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@lru_cache(maxsize=1)
def _token_digests() -> tuple[tuple[str, bytes], ...]:
    return tuple((partner, _digest(token)) for partner, token in settings.WEBHOOK_TOKENS)


@lru_cache(maxsize=1)
def _casefolded_token_digests() -> tuple[tuple[str, bytes], ...]:
    return tuple((partner, _digest(token.casefold())) for partner, token in settings.WEBHOOK_TOKENS)


@receiver(setting_changed)
def _forget_tokens(setting, **kwargs):
    if setting == "WEBHOOK_TOKENS":
        _token_digests.cache_clear()
        _casefolded_token_digests.cache_clear()


# A webhook path in any case and with any number of slashes: "/Webhook/", "//webhook//".
_ANY_WEBHOOK_PATH = re.compile(r"(/+)(webhook)(/+)(.*)", re.IGNORECASE | re.DOTALL)


def near_miss(path: str) -> tuple[str, list[str]] | None:
    """For a path that nearly is a partner's webhook URL, that partner and what is wrong with the path;
    None for the right URL and for any path that holds no configured token.

    A near miss is the /webhook/ prefix in another case or with doubled slashes, characters around the
    token (a quote, a space), more path after it, or the token itself in another case. The token is
    compared as partner_for_token compares it, hashed and with every configured token, so the time
    taken says nothing about a guess that is not a token up to case.
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
    partner = _match(core, _token_digests())
    if partner is None:
        partner = _match(core.casefold(), _casefolded_token_digests())
        if partner is None:
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
    return (partner, mistakes) if mistakes else None


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
