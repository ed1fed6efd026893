"""What every network's API client shares: HTTP with retries, the API session, and the record codec.

Reconciliation (orders.reconcile) reads each network's own records of its orders, to find the order
events whose postbacks never arrived. A network's module (partners/<network>.py) holds, beside its
postback parser, an ApiClient subclass that knows the network's login, its endpoint and its paging, and
its Partner reads each record into the same ParsedOrder a postback becomes (Partner.read_api_record).
Here is what the clients share:

- Http: one requests.Session that sends every network `Accept: application/json` and a User-Agent naming
  the product, with short timeouts and TLS verification on (requests' default, which nothing here turns
  off). It retries a timeout, a dropped connection or a 5xx answer with exponential backoff, and waits out
  a 429's Retry-After, both within RetryPolicy's bounds; then the run stops with an ApiError. It follows
  no redirect: a redirect to another host would carry our token there.
- Tokens and TokenStore: the API session between runs (partners.models.ApiSession keeps it in the
  database), so that a network whose logins are limited (EPN.bz's ssid: about one a day) is rarely asked
  for a new one. A client saves every token it is issued at once: EPN.bz's refresh tokens are good once.
- The record codec: a record is stored as it came (JSON, its amounts in their exact digits) and read back
  with its amounts as Decimal, never float.

Clients read no settings: orders.reconcile gives them their credentials, URLs and token store. No secret
(a client secret, a token) goes into an exception message or a log line; `held_secrets()` lists the
tokens this process holds, for the log redaction (epnhook.logging.TOKEN_SOURCES).
"""

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import requests

log = logging.getLogger("epnhook.api")

USER_AGENT = f"epnhook/0.1 (postback ledger reconciliation) python-requests/{requests.__version__}"
# Seconds to connect, and to wait for each read of an answer: a network that takes longer is asked again
# (Admitad's statistics are reported to take a minute at times; the retries cover that).
TIMEOUT = (5.0, 30.0)
# An access token this close to its expiry is renewed before it is used.
EXPIRY_MARGIN = timedelta(minutes=5)
# The part of an error answer quoted in a message.
QUOTED_ANSWER = 200


class ApiError(Exception):
    """The network's API failed in a way that ends the run. The message says what, in an operator's words,
    and holds no secret."""


@dataclass(frozen=True)
class RetryPolicy:
    """How patient a client is with one request; every wait goes through `sleep` (tests pass their own)."""

    attempts: int = 5  # tries of one request, the first included
    backoff: float = 2.0  # seconds before the second try, doubled before each further one
    max_backoff: float = 60.0
    # A 429 that asks for a longer wait than this ends the run: the next one reads the window again.
    max_retry_after: float = 300.0
    timeout: tuple[float, float] = TIMEOUT
    sleep: Callable[[float], None] = time.sleep

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt`: exponential, with jitter so that clients do not
        retry in step."""
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


class Http:
    """The requests of one run to one network."""

    def __init__(self, policy: RetryPolicy | None = None):
        self.policy = policy or RetryPolicy()
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})

    def send(self, method: str, url: str, *, what: str, retry_throttled: bool = True, **kwargs) -> requests.Response:
        """The answer to the request, retried as the policy says; any answer but a 5xx or 429 is returned.

        `what` names the request in messages. With retry_throttled=False a 429 is returned at once (a login
        the network limits, where asking again makes it worse). ApiError when the tries run out, or when a
        429 asks for a longer wait than the policy allows.
        """
        policy = self.policy
        for attempt in range(1, policy.attempts + 1):
            try:
                response = self.session.request(method, url, timeout=policy.timeout, allow_redirects=False, **kwargs)
            except (requests.Timeout, requests.ConnectionError) as error:
                problem, pause = f"no answer ({type(error).__name__})", policy.pause(attempt)
            else:
                status = response.status_code
                if status == 429 and retry_throttled:
                    wait = retry_after(response)
                    if wait is not None and wait > policy.max_retry_after:
                        raise ApiError(f"{what}: throttled (429), asked to wait {wait:g} s, longer than the "
                                       f"{policy.max_retry_after:g} s a run waits; run again later")
                    problem, pause = "throttled (429)", policy.pause(attempt) if wait is None else wait
                elif status >= 500:
                    problem, pause = f"answered {status}", policy.pause(attempt)
                else:
                    return response
            if attempt == policy.attempts:
                raise ApiError(f"{what}: {problem} on each of {policy.attempts} tries; giving up")
            log.warning("%s: %s; trying again in %.1f s (try %d of %d)", what, problem, pause, attempt + 1,
                        policy.attempts)
            policy.sleep(pause)
        raise AssertionError("unreachable: the loop returns or raises on its last try")


def retry_after(response: requests.Response) -> float | None:
    """The wait a 429 asks for, in seconds (Retry-After as seconds or as an HTTP date), or None."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds()) if moment.tzinfo else None


def read_json(response: requests.Response, what: str) -> dict:
    """The JSON object a 200 answer holds, its amounts as Decimal; ApiError for any other answer."""
    if response.status_code != 200:
        raise ApiError(f"{what}: answered {response.status_code}: {describe_answer(response)}")
    try:
        document = json.loads(response.content, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError:
        raise ApiError(f"{what}: the answer is not JSON: {describe_answer(response)}") from None
    if not isinstance(document, dict):
        raise ApiError(f"{what}: the answer is not a JSON object")
    return document


def describe_answer(response: requests.Response) -> str:
    """The start of an answer's body, for a message: what the network said of an error."""
    text = response.content[:QUOTED_ANSWER * 4].decode("utf-8", "replace")
    if "html" in response.headers.get("Content-Type", ""):
        return "an HTML page (from a proxy?)"
    return " ".join(text.split())[:QUOTED_ANSWER] or "(empty)"


def dig(document: dict, *keys: str, what: str):
    """document[key][key]...; ApiError naming the missing part when the answer is not shaped as expected."""
    value = document
    for number, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise ApiError(f"{what}: the answer has no {'.'.join(keys[:number + 1])}")
        value = value[key]
    return value


# --- The API session ------------------------------------------------------------------------------

@dataclass
class Tokens:
    """A network's API session. Its repr says which tokens are set, never what they are."""

    access_token: str = field(default="", repr=False)
    access_expires_at: datetime | None = None
    refresh_token: str = field(default="", repr=False)

    def access_usable(self, now: datetime) -> bool:
        expires = self.access_expires_at
        return bool(self.access_token) and (expires is None or expires - EXPIRY_MARGIN > now)


class TokenStore(Protocol):
    """Where a client keeps its session between runs (partners.models.ApiSession)."""

    def load(self) -> Tokens: ...

    def save(self, tokens: Tokens) -> None: ...


# The tokens of the session each API (by its URL) has in this process: a new session replaces the old one,
# whose tokens are used up or expired, so the list stays as short as the redaction of every line needs.
_held: dict[str, tuple[str, str]] = {}


def held_secrets() -> tuple[str, ...]:
    """The tokens this process holds (epnhook.logging.TOKEN_SOURCES calls it for every log line)."""
    return tuple(token for tokens in _held.values() for token in tokens if token)


def expires_at(expires_in, now: datetime) -> datetime | None:
    """When a token said to live `expires_in` seconds expires; None when the answer does not say."""
    if isinstance(expires_in, int | Decimal) and not isinstance(expires_in, bool) and expires_in > 0:
        return now + timedelta(seconds=int(expires_in))
    return None


class ApiClient:
    """A network's API as reconciliation reads it: log in (keeping the session in `store`), then page
    through the records whose status changed within a window of dates.

    A subclass gives `page_size`, `authorization()` (the headers that carry a token), `renew()` (a new
    session, from the stored one or by logging in) and `pages()`.
    """

    # Records asked for per page: the most the network serves.
    page_size: int

    def __init__(self, *, client_id: str, client_secret: str, api_url: str, store: TokenStore, http: Http):
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_url = api_url
        self.store = store
        self.http = http

    def pages(self, since: date, until: date) -> Iterator[list[dict]]:
        """The records whose status changed from `since` to `until` (dates in the network's time zone, both
        included), one page at a time: only the page being read is held."""
        raise NotImplementedError

    def authorization(self, access_token: str) -> dict[str, str]:
        raise NotImplementedError

    def renew(self, tokens: Tokens, now: datetime) -> Tokens:
        """A new session: from `tokens` (the stored one, whose access token is unusable) or by logging in."""
        raise NotImplementedError

    def get_json(self, url: str, params: dict, *, what: str) -> dict:
        """An authorised GET of a JSON object. An access token refused mid-run (401: it expired early, or was
        revoked) is renewed once and the request sent again."""
        for renew in (False, True):
            response = self.http.send("GET", url, what=what, params=params,
                                      headers=self.authorization(self.access_token(renew=renew)))
            if response.status_code != 401:
                return read_json(response, what)
            log.info("%s: the access token was refused (401); renewing it", what)
        raise ApiError(f"{what}: a newly issued access token was refused too (401): {describe_answer(response)}")

    def access_token(self, *, renew: bool = False) -> str:
        """A usable access token: the stored one, or a new session, saved before it is used."""
        now = datetime.now(UTC)
        tokens = self.store.load()
        _held[self.api_url] = (tokens.access_token, tokens.refresh_token)
        if renew or not tokens.access_usable(now):
            tokens = self.renew(tokens, now)
            _held[self.api_url] = (tokens.access_token, tokens.refresh_token)
            self.store.save(tokens)
        return tokens.access_token


# --- Records as they came -----------------------------------------------------------------------------

def dump_record(record) -> bytes:
    """A record as JSON, each amount (Decimal) as a number with exactly its digits: what a delivery keeps."""
    return _exact_json(record).encode()


def _exact_json(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(key), ensure_ascii=False)}: {_exact_json(item)}"
                               for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_exact_json(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value, ensure_ascii=False)


def load_record(body: bytes) -> dict:
    """A record dump_record wrote (or the network sent), its amounts as Decimal. ValueError if it is not a
    JSON object."""
    record = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    if not isinstance(record, dict):
        raise ValueError("the record is not a JSON object")
    return record


def plain(value):
    """A record with its amounts as text in their exact digits: JSON-safe, for an order's raw payload."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")
