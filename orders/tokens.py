"""Mapping a webhook URL token to its partner, in constant time."""

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


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
