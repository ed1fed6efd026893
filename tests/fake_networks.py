"""EPN.bz's and Admitad's own APIs, faked on loopback, for tests of code that reads them.

`FakeEpn` and `FakeAdmitad` each run a `ThreadingHTTPServer` on 127.0.0.1 (a free port, a daemon thread)
for the length of a `with` block and speak one network's contract as the public material describes it
(the networks' developer pages and open-source clients of their APIs; none of it was checked against a
live account). What they share lives in `FakeNetwork`:

- Records: `add()` takes our normalised values (the names of `orders.models.Order`: `uniq_id`,
  `order_number`, `click_id`, `revenue`, `commission_fee`, `currency`, `time_of_order`, `offer_id`;
  money as Decimal or str, aware datetimes) plus the network's own status word and, by the network's
  own names, the fields we do not keep; it stores the record in the network's own shape and returns
  that dict (a test may change it mid-run). `add_malformed(Defect.X, ...)` adds one with a defect.
  Records are served in the order they were added.
- Credentials: `client_id` and `client_secret` are the ones the fake accepts; anything else answers
  401 with an error body in the network's style.
- Tokens: access tokens live `access_token_lifetime` seconds; `expire_access_tokens_after(n)` expires
  every token issued so far once n more data calls have presented a valid one, and
  `revoke_refresh_tokens()` makes every refresh token issued so far useless.
- Faults for the next data calls (the statistics endpoint, not the token endpoints), queued in call
  order: `serve_next(n)`, `throttle_next(n, retry_after)` (429), `fail_next(n, status)` (an HTML 500
  page, as from a proxy), `delay_next(n, seconds)` (then answers normally), `drop_next(n)` (closes the
  connection without a word). `fake.serve_next(2); fake.fail_next()` fails the third data call.
- Log: `requests` holds every request received (`LoggedRequest`: method, path, query, headers, body,
  the access token it presented and the status answered), `data_requests` those to the data endpoint.

Where the public material is silent or ambiguous the fake chooses, and each choice is a comment that
starts with "Interpretation:". Where a strict fake costs a client nothing (sending the headers on every
call, naming only known parameters) the fake is strict, so a client that passes here asks the real API
for nothing it might refuse.

    with FakeEpn(ssid_daily_limit=2) as epn:
        epn.add("E-1", click_id="42", status="approved", commission_fee=Decimal("0.123456789"), currency="TON")
        epn.add_malformed(Defect.BAD_MONEY, "E-2")
        epn.expire_access_tokens_after(1)  # the second data call needs a refreshed token
        ...  # the code under test, given epn.oauth_url, epn.api_url, epn.client_id, epn.client_secret
        assert all(request.headers["User-Agent"] for request in epn.requests)

    with FakeAdmitad() as admitad:
        admitad.add("1001", click_id="42", status="approved_but_stalled", subid1="spring")
        admitad.throttle_next(2, retry_after=1)
        ...  # the code under test, given admitad.url, admitad.client_id, admitad.client_secret
        assert [request.status for request in admitad.data_requests][:3] == [429, 429, 200]
"""

import base64
import json
import re
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.message import Message
from enum import StrEnum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

# Interpretation: both networks give and take times in Moscow time. ePN's postbacks do (see
# partners/epn_bz.py); Admitad shows times in the account's time zone, Moscow for a Russian site.
NETWORK_TIMEZONE = ZoneInfo("Europe/Moscow")


class Defect(StrEnum):
    """What `add_malformed` breaks in an otherwise normal record."""

    MISSING_ID = "missing_id"  # the network's id of the order event is absent
    BAD_MONEY = "bad_money"  # the reward is locale-formatted text, not a number
    UNKNOWN_STATUS = "unknown_status"  # a status word the network's vocabulary does not have


BAD_MONEY = "1 234,50"
UNKNOWN_STATUS = "frozen"


@dataclass
class LoggedRequest:
    """One request as the fake received it. `token` is the access token it presented (None: none);
    `status` is the status answered (0: connection dropped; None: not answered yet)."""

    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes
    token: str | None = None
    status: int | None = None


@dataclass(frozen=True)
class OrderFacts:
    """A record as the test describes it, in our names and types."""

    uniq_id: str
    order_number: str
    click_id: str
    status: str
    revenue: Decimal
    commission_fee: Decimal
    currency: str
    time_of_order: datetime
    status_updated: datetime
    offer_id: str


@dataclass
class Record:
    """One record of the fake: what the test said, and what the network serves."""

    facts: OrderFacts
    body: dict  # what the network serves for it


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


DROP = Reply(0)  # close the connection without answering


class Answer(Exception):
    """Raised by a route to answer at once with `reply` (a refusal, a fault)."""

    def __init__(self, reply: Reply):
        super().__init__(reply.status)
        self.reply = reply


@dataclass(frozen=True)
class Route:
    method: str
    answer: Callable[[LoggedRequest], Reply]
    params: frozenset[str] = frozenset()  # the query parameters it knows; any other answers 400
    data: bool = False  # a data call: scripted faults apply to it


class _Tokens:
    """Access and refresh tokens. The fake calls it under its lock."""

    def __init__(self, lifetime: int):
        self.lifetime = lifetime
        self._access: dict[str, float] = {}  # token -> time.monotonic() at which it expires
        self._refresh: set[str] = set()
        self._uses_left: int | None = None

    def issue(self) -> tuple[str, str]:
        access, refresh = secrets.token_hex(20), secrets.token_hex(20)
        self._access[access] = time.monotonic() + self.lifetime
        self._refresh.add(refresh)
        return access, refresh

    def state(self, token: str | None) -> str:
        """The token's state: valid, expired or unknown. A valid one counts towards `expire_after`."""
        if token not in self._access:
            return "unknown"
        if self._access[token] <= time.monotonic():
            return "expired"
        if self._uses_left is not None:
            self._uses_left -= 1
            if self._uses_left <= 0:
                self.expire_after(0)
        return "valid"

    def expire_after(self, uses: int) -> None:
        if uses > 0:
            self._uses_left = uses
            return
        self._uses_left = None
        self._access = dict.fromkeys(self._access, 0.0)

    def redeem(self, refresh: object) -> bool:
        """Uses up a refresh token. Interpretation: refresh tokens are single-use (each refresh answers
        a new pair, and public clients store the new refresh token)."""
        if isinstance(refresh, str) and refresh in self._refresh:
            self._refresh.remove(refresh)
            return True
        return False

    def revoke_refresh(self) -> None:
        self._refresh.clear()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (its timeout during a delayed answer) is part of the script; anything
        # else is a bug in the fake and is printed.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients with a connection pool expect
    timeout = 30  # an idle kept-alive connection ends its thread
    fake: "FakeNetwork"

    def do_GET(self):  # noqa: N802 (http.server's names)
        self.fake._serve(self)

    do_POST = do_GET

    def log_message(self, *args):
        """Silent: the fake keeps its own log."""


class FakeNetwork:
    """Server plumbing, records, tokens, faults and the request log of a fake network API.

    A subclass gives its `routes()`, its `error_body()`, `render()` (our facts to its record), the
    status words and extra field names `add()` accepts, and where its records keep the id, the reward
    and the status (key paths, for `add_malformed`).
    """

    statuses: tuple[str, ...]
    default_status: str
    extra_fields: tuple[str, ...]
    id_paths: tuple[tuple[str, ...], ...]
    money_path: tuple[str, ...]
    status_path: tuple[str, ...]

    def __init__(self, *, client_id: str, client_secret: str, access_token_lifetime: int):
        self.client_id = client_id
        self.client_secret = client_secret
        self.records: list[Record] = []
        self.requests: list[LoggedRequest] = []
        self.url = ""  # set on entering the `with` block
        self._tokens = _Tokens(access_token_lifetime)
        self._faults: deque[tuple[str, float]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._routes = self.routes()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self):
        self._server = _Server(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": self}))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval: shutdown() waits for the next poll, and tests start many fakes.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()  # wakes delayed answers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # What a subclass gives.

    def routes(self) -> dict[str, Route]:
        raise NotImplementedError

    def error_body(self, status: int, kind: str, description: str) -> dict:
        raise NotImplementedError

    def render(self, facts: OrderFacts, extra: dict) -> dict:
        raise NotImplementedError

    def check_headers(self, request: LoggedRequest) -> None:
        """Refuses (raises Answer) a request whose headers the network refuses, before anything else."""

    # Records.

    def add(self, uniq_id: str, *, order_number: str | None = None, click_id: str = "7", status: str | None = None,
            revenue: Decimal | str = "100.00", commission_fee: Decimal | str = "5.00", currency: str = "RUB",
            time_of_order: datetime | None = None, status_updated: datetime | None = None, offer_id: str = "1",
            **extra) -> dict:
        """Adds a record and returns its body as the network serves it.

        `status` is the network's own word (the code under test maps it to ours); `extra` takes the
        network's own names for fields we do not keep. `time_of_order` defaults to an hour ago and
        `status_updated` to `time_of_order`.
        """
        status = status or self.default_status
        if status not in self.statuses:
            raise ValueError(f"{status!r} is not one of {self.statuses}; use add_malformed for a bad one")
        unknown = set(extra) - set(self.extra_fields)
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)}; this network's own are {self.extra_fields}")
        time_of_order = time_of_order or datetime.now(UTC) - timedelta(hours=1)
        facts = OrderFacts(
            uniq_id=uniq_id, order_number=order_number or f"N-{uniq_id}", click_id=click_id, status=status,
            revenue=money(revenue), commission_fee=money(commission_fee), currency=currency,
            time_of_order=time_of_order, status_updated=status_updated or time_of_order, offer_id=offer_id,
        )
        record = Record(facts, self.render(facts, extra))
        with self._lock:
            self.records.append(record)
        return record.body

    def add_malformed(self, defect: Defect, uniq_id: str, **fields) -> dict:
        """Adds a record (as `add` does) with `defect` in it."""
        body = self.add(uniq_id, **fields)
        if defect is Defect.MISSING_ID:
            for path in self.id_paths:
                del _parent(body, path)[path[-1]]
        elif defect is Defect.BAD_MONEY:
            _parent(body, self.money_path)[self.money_path[-1]] = BAD_MONEY
        else:
            _parent(body, self.status_path)[self.status_path[-1]] = UNKNOWN_STATUS
        return body

    # Tokens.

    def expire_access_tokens_after(self, data_calls: int) -> None:
        """Every access token issued so far expires once `data_calls` more data calls have presented a
        valid one (0: at once); tokens issued later live their normal life."""
        with self._lock:
            self._tokens.expire_after(data_calls)

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._tokens.revoke_refresh()

    def issue_tokens(self) -> tuple[str, str]:
        """A new (access token, refresh token) pair. Called under the lock, by the token routes."""
        return self._tokens.issue()

    def redeem_refresh_token(self, refresh: object) -> bool:
        return self._tokens.redeem(refresh)

    @property
    def access_token_lifetime(self) -> int:
        return self._tokens.lifetime

    def authorize(self, request: LoggedRequest, token: str | None) -> None:
        """Refuses (401) a data call whose access token is missing, unknown or expired."""
        request.token = token
        state = self._tokens.state(token)
        if state != "valid":
            described = "no access token" if token is None else f"{state} access token"
            raise self.refusal(401, "invalid_token", described)

    # Faults.

    def serve_next(self, n: int = 1) -> None:
        """The next n data calls are answered normally (to place a later fault)."""
        self._script("serve", n)

    def throttle_next(self, n: int = 1, retry_after: int = 1) -> None:
        self._script("throttle", n, retry_after)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        self._script("fail", n, status)

    def delay_next(self, n: int = 1, seconds: float = 2.0) -> None:
        """The next n data calls are answered normally after `seconds` (or when the fake stops)."""
        self._script("delay", n, seconds)

    def drop_next(self, n: int = 1) -> None:
        self._script("drop", n)

    def _script(self, kind: str, n: int, value: float = 0) -> None:
        with self._lock:
            self._faults.extend([(kind, value)] * n)

    def _next_fault(self) -> tuple[str, float]:
        with self._lock:
            return self._faults.popleft() if self._faults else ("serve", 0)

    # The log.

    @property
    def data_requests(self) -> list[LoggedRequest]:
        return [request for request in self.requests if getattr(self._routes.get(request.path), "data", False)]

    # Answers.

    def refusal(self, status: int, kind: str, description: str, headers: dict | None = None) -> Answer:
        """An error answer in the network's style; `kind` is an OAuth 2 error word."""
        return Answer(Reply(status, encode_json(self.error_body(status, kind, description)), headers=headers or {}))

    def parameter(self, request: LoggedRequest, name: str, parse: Callable[[str], object], default=None):
        """Query parameter `name` through `parse` (which raises ValueError on a bad value), or `default`
        when absent; a bad value answers 400."""
        text = request.query.get(name)
        if text is None:
            return default
        try:
            return parse(text)
        except ValueError as error:
            raise self.refusal(400, "invalid_request", f"{name}: {error}") from None

    def equal_to(self, request: LoggedRequest, filters: dict[str, tuple[str, Callable[[str], object]]]) -> dict:
        """{record field: wanted value} for each given parameter of `filters` ({param: (field, parse)})."""
        return {key: self.parameter(request, name, parse) for name, (key, parse) in filters.items()
                if name in request.query}

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        request = LoggedRequest(handler.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                                handler.headers, body)
        with self._lock:
            self.requests.append(request)
        reply = self._answer(request)
        request.status = reply.status
        if reply is DROP:
            handler.close_connection = True
            return
        handler.send_response(reply.status)
        for name, value in {"Content-Type": reply.content_type, "Content-Length": str(len(reply.body)),
                            **reply.headers}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(reply.body)

    def _answer(self, request: LoggedRequest) -> Reply:
        try:
            route = self._routes.get(request.path)
            if route is None:
                raise self.refusal(404, "not_found", f"no endpoint {request.path}")
            if request.method != route.method:
                raise self.refusal(405, "method_not_allowed", f"{request.path} takes {route.method}")
            self.check_headers(request)
            if route.data:
                self._apply_fault()
            unknown = sorted(set(request.query) - route.params)
            if unknown:
                raise self.refusal(400, "invalid_request", f"unknown parameters: {', '.join(unknown)}")
            with self._lock:
                return route.answer(request)
        except Answer as answer:
            return answer.reply

    def _apply_fault(self) -> None:
        kind, value = self._next_fault()
        if kind == "delay":
            self._stopping.wait(value)
        elif kind == "drop":
            raise Answer(DROP)
        elif kind == "throttle":
            raise self.refusal(429, "rate_limited", "too many requests", {"Retry-After": str(int(value))})
        elif kind == "fail":
            raise Answer(html_page(int(value)))


class FakeEpn(FakeNetwork):
    """ePN: oauth2.epn.bz at `oauth_url` (ssid, token, token/refresh), app.epn.bz at `api_url`
    (transactions/user). One server; the two bases are path prefixes, so a call sent to the wrong base
    answers 404.

    `ssid_calls` counts calls to `ssid`; past `ssid_daily_limit` of them it answers 429 with a captcha.
    Interpretation: the "day" is the fake's lifetime (a test is shorter than a day); the limit is
    reported as "about one call a day per address", hence the default of 1.
    """

    statuses = ("pending", "approved", "rejected", "canceled", "hold")
    default_status = "pending"
    # The API's field names (the `fields` parameter's list). Our facts fill transactionId,
    # order_number, order_status, revenue, commission_user, currency, order_time, transaction_time,
    # user_click_id, click_id and offer_id; `add` takes the others by name.
    fields = ("order_number", "order_time", "order_status", "transaction_time", "revenue", "commission_user",
              "user_click_id", "click_id", "offer_id", "offer_type", "type_id", "currency", "transactionId",
              "sub1", "sub2", "sub3", "sub4", "sub5", "action_id", "country_code")
    extra_fields = ("offer_type", "type_id", "sub1", "sub2", "sub3", "sub4", "sub5", "action_id", "country_code")
    id_paths = (("id",), ("attributes", "transactionId"))
    money_path = ("attributes", "commission_user")
    status_path = ("attributes", "order_status")
    max_per_page = 1000
    # Interpretation: the default page size is not documented; 20 (Admitad's) stands in for it.
    default_per_page = 20

    def __init__(self, *, client_id: str = "epn-client-id", client_secret: str = "epn-client-secret",
                 access_token_lifetime: int = 86400, ssid_daily_limit: int = 1):
        super().__init__(client_id=client_id, client_secret=client_secret,
                         access_token_lifetime=access_token_lifetime)
        self.ssid_daily_limit = ssid_daily_limit
        self.ssid_calls = 0
        self._ssids: set[str] = set()

    @property
    def oauth_url(self) -> str:
        return f"{self.url}/oauth2"

    @property
    def api_url(self) -> str:
        return f"{self.url}/app"

    def routes(self) -> dict[str, Route]:
        version = frozenset({"v"})
        return {
            "/oauth2/ssid": Route("GET", self._ssid, version | {"client_id"}),
            "/oauth2/token": Route("POST", self._token, version),
            "/oauth2/token/refresh": Route("POST", self._refresh, version),
            "/app/transactions/user": Route("GET", self._transactions, frozenset({
                "tsFrom", "tsTo", "statusUpdatedStart", "statusUpdatedEnd", "page", "perPage", "clickId",
                "offerIds", "currency", "fields"}), data=True),
        }

    def error_body(self, status: int, kind: str, description: str) -> dict:
        # Interpretation: the shape public clients read (`errors[0].error_description`); the numbers
        # are the fake's own, in the pattern of the reported 403001 and 403005.
        return {"result": False, "data": [], "errors": [{"error": status * 1000 + 1,
                                                         "error_description": description}]}

    def check_headers(self, request: LoggedRequest) -> None:
        # Interpretation: "requests without Accept and User-Agent are refused" is reported for
        # app.epn.bz, as nginx's 403 page; the fake refuses them on every endpoint, and asks for
        # X-API-VERSION: 2 (and v=2, when a `v` is given) everywhere too.
        if not request.headers.get("Accept") or not request.headers.get("User-Agent"):
            raise Answer(html_page(403))
        if request.headers.get("X-API-VERSION") != "2" or request.query.get("v", "2") != "2":
            raise self.refusal(400, "invalid_request", "X-API-VERSION: 2 is required")

    def render(self, facts: OrderFacts, extra: dict) -> dict:
        # Interpretation: which field equals the postback's uniq_id is undocumented (transactionId or
        # the record's id), and so is which of user_click_id and click_id carries the site's click id;
        # the fake fills both of each pair with the same value, so either reading works until a dry
        # run on a real account settles it. transaction_time is taken to be the time of the last
        # status change (what statusUpdatedStart/End filter on).
        attributes = dict.fromkeys(self.fields) | {
            "transactionId": facts.uniq_id,
            "order_number": facts.order_number,
            "order_status": facts.status,
            "revenue": facts.revenue,
            "commission_user": facts.commission_fee,
            "currency": facts.currency,
            "order_time": local_text(facts.time_of_order),
            "transaction_time": local_text(facts.status_updated),
            "user_click_id": facts.click_id,
            "click_id": facts.click_id,
            "offer_id": facts.offer_id,
        } | wire(extra)
        return {"type": "transaction", "id": facts.uniq_id, "attributes": attributes}

    def _ssid(self, request: LoggedRequest) -> Reply:
        self.ssid_calls += 1
        if self.ssid_calls > self.ssid_daily_limit:
            # Interpretation: the captcha's shape is not public; this one only has to look like one.
            body = self.error_body(429, "captcha", "too many ssid requests: solve the captcha")
            body["errors"][0]["captcha"] = {"phrase_key": secrets.token_hex(8), "image": "data:image/png;base64,"}
            raise Answer(Reply(429, encode_json(body)))
        if request.query.get("client_id") != self.client_id:
            raise self.refusal(401, "invalid_client", "unknown client_id")
        ssid = secrets.token_hex(16)
        self._ssids.add(ssid)
        return json_reply({"result": True, "data": {"type": "ssid", "attributes": {"ssid_token": ssid}}})

    def _token(self, request: LoggedRequest) -> Reply:
        payload = self._json_body(request, "client_credential")
        if (payload.get("client_id"), payload.get("client_secret")) != (self.client_id, self.client_secret):
            raise self.refusal(401, "invalid_client", "wrong client_id or client_secret")
        ssid = payload.get("ssid_token")
        # Interpretation: an ssid_token is good for one login.
        if not isinstance(ssid, str) or ssid not in self._ssids:
            raise self.refusal(401, "invalid_grant", "unknown or used ssid_token")
        self._ssids.remove(ssid)
        return self._token_reply()

    def _refresh(self, request: LoggedRequest) -> Reply:
        payload = self._json_body(request, "refresh_token")
        if payload.get("client_id") != self.client_id:
            raise self.refusal(401, "invalid_client", "unknown client_id")
        if not self.redeem_refresh_token(payload.get("refresh_token")):
            raise self.refusal(401, "invalid_grant", "unknown, used or revoked refresh_token")
        return self._token_reply()

    def _json_body(self, request: LoggedRequest, grant_type: str) -> dict:
        try:
            payload = json.loads(request.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise self.refusal(400, "invalid_request", "the body must be a JSON object")
        if payload.get("grant_type") != grant_type:
            raise self.refusal(400, "unsupported_grant_type", f"grant_type must be {grant_type}")
        return payload

    def _token_reply(self) -> Reply:
        access, refresh = self.issue_tokens()
        return json_reply({"result": True, "data": {"type": "token", "attributes": {
            "access_token": access, "refresh_token": refresh, "expires_in": self.access_token_lifetime}}})

    def _transactions(self, request: LoggedRequest) -> Reply:
        self.authorize(request, request.headers.get("X-ACCESS-TOKEN"))
        day = strict_time("%Y-%m-%d")
        ts_from, ts_to = (self.parameter(request, name, day) for name in ("tsFrom", "tsTo"))
        if ts_from is None or ts_to is None:
            raise self.refusal(400, "invalid_request", "tsFrom and tsTo are required")
        # Interpretation: "no more than a year back" is 365 days before today's date in Moscow.
        if ts_from.date() < datetime.now(NETWORK_TIMEZONE).date() - timedelta(days=365):
            raise self.refusal(400, "invalid_request", "tsFrom: no more than a year back")
        updated = [self.parameter(request, name, day) for name in ("statusUpdatedStart", "statusUpdatedEnd")]
        page = self.parameter(request, "page", bounded_int(1), 1)
        per_page = self.parameter(request, "perPage", bounded_int(1, self.max_per_page), self.default_per_page)
        selected = self.parameter(request, "fields", self._field_list)
        offers = self.parameter(request, "offerIds", lambda text: set(text.split(",")))
        wanted = self.equal_to(request, {"clickId": ("user_click_id", str), "currency": ("currency", str)})
        # Interpretation: with statusUpdatedStart or statusUpdatedEnd the window is on the time of the
        # last status change (tsFrom and tsTo are still required and checked, but do not filter);
        # without, on the order's time. Dates are whole days, both ends included.
        if any(updated):
            window, moment = [value and value.date() for value in updated], "status_updated"
        else:
            window, moment = [ts_from.date(), ts_to.date()], "time_of_order"
        matching = [
            record for record in self.records
            if within(local(getattr(record.facts, moment)).date(), *window)
            and matches(record.body["attributes"], wanted)
            and (offers is None or str(record.body["attributes"].get("offer_id")) in offers)
        ]
        chunk = matching[(page - 1) * per_page:page * per_page]
        return json_reply({
            "data": [self._with_fields(record.body, selected) for record in chunk],
            "meta": {"totalFound": len(matching), "hasNext": page * per_page < len(matching)},
        })

    def _field_list(self, text: str) -> list[str]:
        names = text.split(",")
        unknown = [name for name in names if name not in self.fields]
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        return names

    @staticmethod
    def _with_fields(body: dict, selected: list[str] | None) -> dict:
        # Interpretation: without `fields`, every field is served.
        if selected is None:
            return body
        return {**body, "attributes": {name: body["attributes"].get(name) for name in selected}}


class FakeAdmitad(FakeNetwork):
    """Admitad: `POST /token/` (client credentials with HTTP Basic, or a refresh token) and
    `GET /statistics/actions/` with a bearer token, at `url`."""

    statuses = ("pending", "approved", "declined", "approved_but_stalled")
    default_status = "pending"
    extra_fields = ("subid1", "subid2", "subid3", "subid4", "click_date", "advcampaign_name", "action_type",
                    "processed", "paid")
    id_paths = (("action_id",),)
    money_path = ("payment",)
    status_path = ("status",)
    max_limit = 500
    default_limit = 20  # Admitad's own Python client's default
    # The `status` filter's numbers (1 new, 2 approved, 3 declined) against the records' words.
    # Interpretation: approved_but_stalled is approved (the advertiser has not paid yet).
    status_numbers = {1: ("pending",), 2: ("approved", "approved_but_stalled"), 3: ("declined",)}

    def __init__(self, *, client_id: str = "admitad-client-id", client_secret: str = "admitad-client-secret",
                 access_token_lifetime: int = 7 * 86400):
        super().__init__(client_id=client_id, client_secret=client_secret,
                         access_token_lifetime=access_token_lifetime)

    def routes(self) -> dict[str, Route]:
        # Interpretation: the `website` filter is documented but records here have no website, so it
        # is not among the known parameters (a client that sends it learns so from a 400).
        return {
            "/token/": Route("POST", self._token),
            "/statistics/actions/": Route("GET", self._actions, frozenset({
                "date_start", "date_end", "status_updated_start", "status_updated_end", "subid", "subid1",
                "subid2", "subid3", "subid4", "action_id", "status", "processed", "paid", "campaign",
                "action_type", "limit", "offset"}), data=True),
        }

    def error_body(self, status: int, kind: str, description: str) -> dict:
        # Interpretation: OAuth 2's error shape (RFC 6749 section 5.2), for every error.
        return {"error": kind, "error_description": description}

    def render(self, facts: OrderFacts, extra: dict) -> dict:
        # Interpretation: processed means the action has a final status; the ids are integers.
        return {
            "action_id": int(facts.uniq_id),
            "status": facts.status,
            "payment": facts.commission_fee,
            "cart": facts.revenue,
            "currency": facts.currency,
            "subid": facts.click_id,
            "subid1": None, "subid2": None, "subid3": None, "subid4": None,
            "action_date": local_text(facts.time_of_order),
            "click_date": local_text(facts.time_of_order),
            "status_updated": local_text(facts.status_updated),
            "order_id": facts.order_number,
            "advcampaign_id": int(facts.offer_id),
            "advcampaign_name": f"Campaign {facts.offer_id}",
            "action_type": "sale",
            "processed": int(facts.status != "pending"),
            "paid": 0,
        } | wire(extra)

    def _token(self, request: LoggedRequest) -> Reply:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if basic_credentials(request) != (self.client_id, self.client_secret) or \
                    form.get("client_id") != self.client_id:
                raise self.refusal(401, "invalid_client", "wrong client credentials")
            if "statistics" not in form.get("scope", "").split():
                raise self.refusal(400, "invalid_scope", "scope must include statistics")
        elif grant == "refresh_token":
            # Interpretation: as Admitad's own Python client refreshes: the credentials in the form.
            if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
                raise self.refusal(401, "invalid_client", "wrong client credentials")
            if not self.redeem_refresh_token(form.get("refresh_token")):
                raise self.refusal(400, "invalid_grant", "unknown, used or revoked refresh_token")
        else:
            raise self.refusal(400, "unsupported_grant_type", "grant_type must be client_credentials")
        access, refresh = self.issue_tokens()
        return json_reply({"access_token": access, "token_type": "bearer", "expires_in": self.access_token_lifetime,
                           "refresh_token": refresh, "scope": "statistics"})

    def _actions(self, request: LoggedRequest) -> Reply:
        scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
        self.authorize(request, token if scheme.lower() == "bearer" else None)
        limit = self.parameter(request, "limit", bounded_int(1, self.max_limit), self.default_limit)
        offset = self.parameter(request, "offset", bounded_int(0), 0)
        day, moment = strict_time("%d.%m.%Y"), strict_time("%d.%m.%Y %H:%M:%S")
        days = [self.parameter(request, name, day) for name in ("date_start", "date_end")]
        updated = [self.parameter(request, name, moment) for name in ("status_updated_start", "status_updated_end")]
        statuses = self.parameter(request, "status", lambda text: self.status_numbers[bounded_int(1, 3)(text)])
        zero_or_one = bounded_int(0, 1)
        wanted = self.equal_to(request, {
            **{name: (name, str) for name in ("subid", "subid1", "subid2", "subid3", "subid4")},
            "action_id": ("action_id", bounded_int(1)), "campaign": ("advcampaign_id", bounded_int(1)),
            "processed": ("processed", zero_or_one), "paid": ("paid", zero_or_one),
            "action_type": ("action_type", one_of("lead", "sale")),
        })

        # Interpretation: with status_updated_start or _end the window is on the time of the last
        # status change (to the second); without, on the action's date (whole days). Both ends included.
        def in_window(facts: OrderFacts) -> bool:
            if any(updated):
                return within(local(facts.status_updated).replace(tzinfo=None), *updated)
            return within(local(facts.time_of_order).date(), *[value and value.date() for value in days])

        matching = [record for record in self.records
                    if in_window(record.facts) and matches(record.body, wanted)
                    and (statuses is None or record.body.get("status") in statuses)]
        return json_reply({"results": [record.body for record in matching[offset:offset + limit]],
                           "_meta": {"count": len(matching), "limit": limit, "offset": offset}})


# Values on the wire.

_DECIMAL_MARK = "\u0000decimal:"
_MARKED_DECIMAL = re.compile(r'"\\u0000decimal:([^"]*)"')


def encode_json(value) -> bytes:
    """JSON with each Decimal as a number with exactly its digits.

    Interpretation: money is a JSON number in both APIs. A float would round TON's nine places, so a
    client reads these with `json.loads(..., parse_float=Decimal)`.
    """
    def mark(obj):
        if isinstance(obj, Decimal):
            return f"{_DECIMAL_MARK}{obj:f}"
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    return _MARKED_DECIMAL.sub(r"\1", json.dumps(value, default=mark, ensure_ascii=False)).encode()


def json_reply(value) -> Reply:
    return Reply(200, encode_json(value))


def html_page(status: int) -> Reply:
    """The page a proxy such as nginx answers with: HTML, not the network's JSON."""
    title = f"{status} {HTTPStatus(status).phrase}"
    return Reply(status, f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>".encode(),
                 "text/html")


def money(value: Decimal | str) -> Decimal:
    amount = Decimal(str(value))
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return amount


def local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} is naive; the fake takes timezone-aware times")
    return moment.astimezone(NETWORK_TIMEZONE)


def local_text(moment: datetime) -> str:
    return local(moment).strftime("%Y-%m-%d %H:%M:%S")


def wire(extra: dict) -> dict:
    """The network's own fields given to `add`, with datetimes as the network writes them."""
    return {name: local_text(value) if isinstance(value, datetime) else value for name, value in extra.items()}


def basic_credentials(request: LoggedRequest) -> tuple[str, str] | None:
    scheme, _, encoded = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:  # bad base64 (binascii.Error) or bad UTF-8
        return None
    return user, password


# Parameter parsers: each raises ValueError with a message for the 400 answer.

def strict_time(pattern: str) -> Callable[[str], datetime]:
    """Parses exactly `pattern` (zero-padded: what strptime alone would let through, "2024-1-5", is refused)."""
    def parse(text: str) -> datetime:
        moment = datetime.strptime(text, pattern)
        if moment.strftime(pattern) != text:
            raise ValueError(f"not in the format {pattern}")
        return moment
    return parse


def bounded_int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isascii() or not text.isdigit():
            raise ValueError("not a whole number")
        number = int(text)
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(f"must be from {minimum}" + (f" to {maximum}" if maximum is not None else ""))
        return number
    return parse


def one_of(*words: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in words:
            raise ValueError(f"must be one of {', '.join(words)}")
        return text
    return parse


# Filtering.

def within(value: date | datetime, start: date | datetime | None, end: date | datetime | None) -> bool:
    return (start is None or start <= value) and (end is None or value <= end)


def matches(fields: dict, wanted: dict) -> bool:
    return all(fields.get(name) == value for name, value in wanted.items())


def _parent(body: dict, path: Iterable[str]) -> dict:
    *parents, _ = path
    for name in parents:
        body = body[name]
    return body
