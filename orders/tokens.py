"""Mapping a webhook URL token to its partner, in constant time, and limiting wrong guesses."""

import hashlib
import hmac
import logging
import time
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver

log = logging.getLogger("epnhook.tokens")


def partner_for_token(candidate: str) -> str | None:
    """The partner whose token `candidate` is, or None.

    Both sides are hashed first so every comparison is between equal-length digests, and every
    configured token is compared (no early exit), so the time taken says nothing about how close a
    guess was or which token matched.
    """
    digest = hashlib.sha256(candidate.encode("utf-8", "surrogatepass")).digest()
    found = None
    for partner, token_digest in _token_digests():
        if hmac.compare_digest(digest, token_digest):
            found = partner
    return found


@lru_cache(maxsize=1)
def _token_digests() -> tuple[tuple[str, bytes], ...]:
    return tuple((partner, hashlib.sha256(token.encode()).digest()) for partner, token in settings.WEBHOOK_TOKENS)


@receiver(setting_changed)
def _forget_tokens(setting, **kwargs):
    if setting == "WEBHOOK_TOKENS":
        _token_digests.cache_clear()


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
