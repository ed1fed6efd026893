"""tests/fake_networks.py speaks ePN's and Admitad's API contracts: logins, paging, filters and every
scripted fault, seen by urllib as a client. No database."""

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from email.message import Message
from time import monotonic
from urllib.parse import urlencode

import pytest

from tests.fake_networks import BAD_MONEY, NETWORK_TIMEZONE, UNKNOWN_STATUS, Defect, FakeAdmitad, FakeEpn


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self):
        return json.loads(self.body, parse_float=Decimal)


def call(url: str, *, data: bytes | None = None, headers: dict | None = None, timeout: float = 10,
         user_agent: bool = True) -> Response:
    """One request; an HTTP error is a Response too. `user_agent=False` drops urllib's own User-Agent."""
    opener = urllib.request.build_opener()
    if not user_agent:
        opener.addheaders = []
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers or {}), timeout=timeout) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, error.read())


def moscow_today():
    return datetime.now(NETWORK_TIMEZONE).date()


def moscow(day, hour=12, minute=0) -> datetime:
    return datetime.combine(day, time(hour, minute), NETWORK_TIMEZONE)


def given(*headers: dict | None) -> dict:
    """The headers merged, later ones winning; a None value leaves the header out."""
    merged = {name: value for group in headers if group for name, value in group.items()}
    return {name: value for name, value in merged.items() if value is not None}


EPN_HEADERS = {"Accept": "application/json", "User-Agent": "epnhook-tests", "X-API-VERSION": "2"}


class Epn:
    """A minimal client of FakeEpn: one method per call, no retries. The shared tests use `login`,
    `refresh`, `pair`, `page`, `has_next`, `total`, `view` and `error`."""

    max_page = 1000
    refresh_refused = 401

    def __init__(self, fake: FakeEpn):
        self.fake = fake

    def ssid(self, headers: dict | None = None, **query) -> Response:
        query = {"v": "2", "client_id": self.fake.client_id, **query}
        return call(f"{self.fake.oauth_url}/ssid?{urlencode(query)}", headers=given(EPN_HEADERS, headers))

    def post(self, path: str, payload: dict) -> Response:
        return call(f"{self.fake.oauth_url}{path}", data=json.dumps(payload).encode(),
                    headers={**EPN_HEADERS, "Content-Type": "application/json"})

    def token(self, ssid: str, **changes) -> Response:
        return self.post("/token", {"grant_type": "client_credential", "client_id": self.fake.client_id,
                                    "client_secret": self.fake.client_secret, "ssid_token": ssid,
                                    "check_ip": False, **changes})

    def login(self) -> tuple[str, str]:
        ssid = self.ssid()
        assert ssid.status == 200, ssid.body
        token = self.token(ssid.json()["data"]["attributes"]["ssid_token"])
        assert token.status == 200, token.body
        return self.pair(token)

    def refresh(self, refresh_token: str) -> Response:
        return self.post("/token/refresh", {"grant_type": "refresh_token", "refresh_token": refresh_token,
                                            "client_id": self.fake.client_id})

    @staticmethod
    def pair(response: Response) -> tuple[str, str]:
        attributes = response.json()["data"]["attributes"]
        return attributes["access_token"], attributes["refresh_token"]

    def transactions(self, token: str | None, headers: dict | None = None, timeout: float = 10,
                     **params) -> Response:
        today = moscow_today()
        query = {"tsFrom": str(today - timedelta(days=30)), "tsTo": str(today), **params}
        return call(f"{self.fake.api_url}/transactions/user?{urlencode(query)}", timeout=timeout,
                    headers=given(EPN_HEADERS, {"X-ACCESS-TOKEN": token}, headers))

    @staticmethod
    def paging(number: int, size: int) -> dict:
        return {"page": number, "perPage": size}

    def page(self, token: str | None, number: int, size: int, timeout: float = 10) -> Response:
        return self.transactions(token, timeout=timeout, **self.paging(number, size))

    @staticmethod
    def has_next(response: Response) -> bool:
        return response.json()["meta"]["hasNext"]

    @staticmethod
    def total(response: Response) -> int:
        return response.json()["meta"]["totalFound"]

    @staticmethod
    def view(response: Response) -> list[tuple]:
        """(id, reward, status) of each record on the page."""
        return [(item.get("id", item["attributes"].get("transactionId")), item["attributes"]["commission_user"],
                 item["attributes"]["order_status"]) for item in response.json()["data"]]

    @staticmethod
    def error(response: Response) -> str:
        return response.json()["errors"][0]["error_description"]


class Admitad:
    """A minimal client of FakeAdmitad, with the same shared methods as Epn."""

    max_page = 500
    refresh_refused = 400

    def __init__(self, fake: FakeAdmitad):
        self.fake = fake

    def token(self, basic: tuple[str, str] | None = None, **form) -> Response:
        user, password = basic or (self.fake.client_id, self.fake.client_secret)
        form = {"grant_type": "client_credentials", "client_id": self.fake.client_id, "scope": "statistics", **form}
        credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
        return call(f"{self.fake.url}/token/", data=urlencode(form).encode(),
                    headers={"Authorization": f"Basic {credentials}"})

    def login(self) -> tuple[str, str]:
        token = self.token()
        assert token.status == 200, token.body
        return self.pair(token)

    def refresh(self, refresh_token: str) -> Response:
        form = {"grant_type": "refresh_token", "client_id": self.fake.client_id,
                "client_secret": self.fake.client_secret, "refresh_token": refresh_token}
        return call(f"{self.fake.url}/token/", data=urlencode(form).encode())

    @staticmethod
    def pair(response: Response) -> tuple[str, str]:
        return response.json()["access_token"], response.json()["refresh_token"]

    def actions(self, token: str | None, timeout: float = 10, **params) -> Response:
        return call(f"{self.fake.url}/statistics/actions/?{urlencode(params)}", timeout=timeout,
                    headers=given({"Authorization": token and f"Bearer {token}"}))

    @staticmethod
    def paging(number: int, size: int) -> dict:
        return {"limit": size, "offset": (number - 1) * size}

    def page(self, token: str | None, number: int, size: int, timeout: float = 10) -> Response:
        return self.actions(token, timeout=timeout, **self.paging(number, size))

    @staticmethod
    def has_next(response: Response) -> bool:
        meta = response.json()["_meta"]
        return meta["offset"] + meta["limit"] < meta["count"]

    @staticmethod
    def total(response: Response) -> int:
        return response.json()["_meta"]["count"]

    @staticmethod
    def view(response: Response) -> list[tuple]:
        return [(None if "action_id" not in item else str(item["action_id"]), item["payment"], item["status"])
                for item in response.json()["results"]]

    @staticmethod
    def error(response: Response) -> str:
        return response.json()["error_description"]


@pytest.fixture(params=["epn", "admitad"])
def network(request):
    """A client of each fake, entered. ePN's ssid limit is raised: its own test checks the default."""
    fake, client = (FakeEpn(ssid_daily_limit=5), Epn) if request.param == "epn" else (FakeAdmitad(), Admitad)
    with fake:
        yield client(fake)


@pytest.fixture
def epn():
    with FakeEpn() as fake:
        yield Epn(fake)


@pytest.fixture
def admitad():
    with FakeAdmitad() as fake:
        yield Admitad(fake)


def add_orders(fake, count: int) -> list[str]:
    ids = [str(1000 + number) for number in range(count)]
    for uniq_id in ids:
        fake.add(uniq_id)
    return ids


# Both networks.

@pytest.mark.parametrize("size", ["largest", 300])
def test_thousands_of_records_page_to_the_end_in_a_stable_order(network, size):
    size = network.max_page if size == "largest" else size
    ids = add_orders(network.fake, 5000)
    token, _ = network.login()
    seen, number = [], 1
    while True:
        page = network.page(token, number, size)
        assert page.status == 200 and network.total(page) == 5000
        seen += [uniq_id for uniq_id, _, _ in network.view(page)]
        if not network.has_next(page):
            break
        number += 1
    assert seen == ids
    assert number == -(-5000 // size) == len(network.fake.data_requests)
    assert network.view(network.page(token, number + 1, size)) == []


def test_a_page_larger_than_the_maximum_is_refused(network):
    add_orders(network.fake, 3)
    token, _ = network.login()
    refused = network.page(token, 1, network.max_page + 1)
    assert refused.status == 400 and str(network.max_page) in network.error(refused)
    assert network.page(token, 1, network.max_page).status == 200
    assert network.page(token, 1, 0).status == 400


def test_an_access_token_expires_mid_run_and_a_refresh_serves_again(network):
    add_orders(network.fake, 5)
    token, refresh_token = network.login()
    network.fake.expire_access_tokens_after(2)
    assert [network.page(token, number, 2).status for number in (1, 2, 3)] == [200, 200, 401]
    assert "expired" in network.error(network.page(token, 3, 2))
    renewed = network.refresh(refresh_token)
    assert renewed.status == 200
    new_token, _ = network.pair(renewed)
    assert network.page(token, 3, 2).status == 401
    assert network.view(network.page(new_token, 3, 2)) == [("1004", Decimal("5.00"), "pending")]
    assert [(request.token, request.status) for request in network.fake.data_requests] == [
        (token, 200), (token, 200), (token, 401), (token, 401), (token, 401), (new_token, 200)]


def test_access_tokens_can_expire_at_once_and_tokens_issued_later_live_on(network):
    token, _ = network.login()
    network.fake.expire_access_tokens_after(0)
    assert network.page(token, 1, 10).status == 401
    fresh, _ = network.login()
    assert [network.page(fresh, 1, 10).status for _ in range(3)] == [200] * 3


def test_an_access_token_expires_after_its_lifetime(network):
    with type(network.fake)(access_token_lifetime=0) as fake:
        client = type(network)(fake)
        token, _ = client.login()
        assert client.page(token, 1, 10).status == 401


def test_a_refresh_token_is_single_use_and_can_be_revoked(network):
    _, first = network.login()
    renewed = network.refresh(first)
    assert renewed.status == 200
    assert network.refresh(first).status == network.refresh_refused
    _, second = network.pair(renewed)
    network.fake.revoke_refresh_tokens()
    refused = network.refresh(second)
    assert refused.status == network.refresh_refused and "refresh_token" in network.error(refused)
    token, refresh_token = network.login()  # a full login still works, and so does its refresh token
    assert network.page(token, 1, 10).status == 200
    assert network.refresh(refresh_token).status == 200


@pytest.mark.parametrize("token", [None, "made-up"])
def test_a_data_call_without_a_valid_token_answers_401(network, token):
    refused = network.page(token, 1, 10)
    assert refused.status == 401
    assert network.error(refused) == ("no access token" if token is None else "unknown access token")
    assert [(request.token, request.status) for request in network.fake.data_requests] == [(token, 401)]


def test_throttling_answers_429_with_retry_after_then_serves(network):
    add_orders(network.fake, 1)
    token, _ = network.login()
    network.fake.throttle_next(2, retry_after=7)
    throttled = [network.page(token, 1, 10) for _ in range(2)]
    assert [(response.status, response.headers["Retry-After"]) for response in throttled] == [(429, "7")] * 2
    assert network.error(throttled[0]) == "too many requests"
    assert network.page(token, 1, 10).status == 200


def test_a_server_error_is_an_html_page_then_the_next_call_is_served(network):
    token, _ = network.login()
    network.fake.fail_next(1)
    network.fake.fail_next(1, status=503)
    failed = [network.page(token, 1, 10) for _ in range(2)]
    assert [response.status for response in failed] == [500, 503]
    assert failed[0].headers["Content-Type"] == "text/html" and b"500 Internal Server Error" in failed[0].body
    assert network.page(token, 1, 10).status == 200


def test_a_slow_answer_times_a_client_out_and_then_arrives_for_a_patient_one(network):
    add_orders(network.fake, 1)
    token, _ = network.login()
    network.fake.delay_next(1, seconds=60)  # ended by the fake's exit, not waited for
    with pytest.raises(TimeoutError):
        network.page(token, 1, 10, timeout=0.3)
    network.fake.delay_next(1, seconds=0.3)
    started = monotonic()
    assert network.page(token, 1, 10).status == 200
    assert monotonic() - started >= 0.3
    assert [request.status for request in network.fake.data_requests] == [None, 200]  # the first still waits


def test_a_dropped_connection_gets_no_answer_and_is_logged_as_0(network):
    token, _ = network.login()
    network.fake.drop_next()
    with pytest.raises(ConnectionError):
        network.page(token, 1, 10)
    assert network.page(token, 1, 10).status == 200
    assert [request.status for request in network.fake.data_requests] == [0, 200]


def test_faults_queue_in_call_order_and_touch_only_data_calls(network):
    network.fake.serve_next(1)
    network.fake.fail_next(1)
    network.fake.throttle_next(1)
    token, _ = network.login()  # token calls are not data calls: the script waits
    assert [network.page(token, 1, 10).status for _ in range(4)] == [200, 500, 429, 200]


def test_malformed_records_are_mixed_into_a_page(network):
    network.fake.add("1")
    network.fake.add_malformed(Defect.MISSING_ID, "2")
    network.fake.add_malformed(Defect.BAD_MONEY, "3", commission_fee="7.5")
    network.fake.add_malformed(Defect.UNKNOWN_STATUS, "4", status="approved")
    network.fake.add("5", commission_fee=Decimal("0.000000001"), currency="TON")
    token, _ = network.login()
    page = network.page(token, 1, 10)
    assert network.view(page) == [
        ("1", Decimal("5.00"), "pending"),
        (None, Decimal("5.00"), "pending"),
        ("3", BAD_MONEY, "pending"),
        ("4", Decimal("5.00"), UNKNOWN_STATUS),
        ("5", Decimal("0.000000001"), "pending"),
    ]
    assert network.total(page) == 5


def test_add_takes_only_the_networks_words_and_fields(network):
    with pytest.raises(ValueError, match="add_malformed"):
        network.fake.add("1", status="completed")  # our word, not the API's
    with pytest.raises(TypeError, match="unknown fields"):
        network.fake.add("1", sub="x")
    with pytest.raises(ValueError, match="naive"):
        network.fake.add("1", time_of_order=datetime(2025, 1, 1))


def test_the_log_keeps_method_path_query_headers_and_token(network):
    token, _ = network.login()
    network.page(token, 2, 3)
    data = network.fake.data_requests
    assert len(data) == 1 and len(network.fake.requests) > 1
    assert data[0].method == "GET" and data[0].token == token and data[0].status == 200
    assert {name: str(value) for name, value in network.paging(2, 3).items()}.items() <= data[0].query.items()
    assert all(request.headers["User-Agent"] for request in network.fake.requests)


# ePN.

def test_epn_logs_in_in_three_steps_and_serves_its_record_shape(epn):
    ordered = moscow(moscow_today() - timedelta(days=2), 10, 5)
    epn.fake.add("EPN-1", order_number="AE-77", click_id="u-42", status="approved", revenue="1500",
                 commission_fee=Decimal("0.123456789"), currency="TON", time_of_order=ordered.astimezone(UTC),
                 status_updated=ordered + timedelta(hours=3), offer_id="9", sub1="spring", type_id=1)
    ssid = epn.ssid()
    assert ssid.status == 200
    token = epn.token(ssid.json()["data"]["attributes"]["ssid_token"])
    assert token.status == 200
    attributes = token.json()["data"]["attributes"]
    assert attributes["expires_in"] == 86400 and attributes["refresh_token"]
    page = epn.transactions(attributes["access_token"]).json()
    assert page["meta"] == {"totalFound": 1, "hasNext": False}
    [record] = page["data"]
    assert (record["type"], record["id"]) == ("transaction", "EPN-1")
    assert {name: value for name, value in record["attributes"].items() if value is not None} == {
        "transactionId": "EPN-1", "order_number": "AE-77", "order_status": "approved",
        "revenue": Decimal("1500"), "commission_user": Decimal("0.123456789"), "currency": "TON",
        "order_time": ordered.strftime("%Y-%m-%d 10:05:00"), "transaction_time": ordered.strftime("%Y-%m-%d 13:05:00"),
        "user_click_id": "u-42", "click_id": "u-42", "offer_id": "9", "sub1": "spring", "type_id": 1,
    }
    assert set(record["attributes"]) == set(FakeEpn.fields)


def test_epn_ssid_is_limited_to_one_a_day_then_answers_a_captcha(epn):
    assert epn.ssid().status == 200
    captcha = epn.ssid()
    assert captcha.status == 429 and "captcha" in captcha.json()["errors"][0]
    assert epn.fake.ssid_calls == 2


def test_epn_ssid_token_is_good_for_one_login(epn):
    ssid_token = epn.ssid().json()["data"]["attributes"]["ssid_token"]
    assert epn.token(ssid_token).status == 200
    assert epn.token(ssid_token).status == 401


@pytest.mark.parametrize(("changes", "status"), [
    ({"client_secret": "wrong"}, 401), ({"client_id": "wrong"}, 401), ({"ssid_token": "made-up"}, 401),
    ({"grant_type": "client_credentials"}, 400), ({"client_secret": None}, 401),
])
def test_epn_token_refuses_wrong_credentials_in_epn_style(changes, status):
    with FakeEpn(ssid_daily_limit=2) as fake:
        client = Epn(fake)
        ssid_token = client.ssid().json()["data"]["attributes"]["ssid_token"]
        refused = client.token(ssid_token, **changes)
        assert refused.status == status
        assert refused.json()["result"] is False and refused.json()["errors"][0]["error"] == status * 1000 + 1
        assert client.token(ssid_token).status == 200  # the refusal did not use the ssid up


def test_epn_ssid_refuses_an_unknown_client_id(epn):
    assert epn.ssid(client_id="wrong").status == 401


def test_epn_refresh_checks_grant_type_and_client_id(epn):
    _, refresh_token = epn.login()
    assert epn.post("/token/refresh", {"grant_type": "refresh", "refresh_token": refresh_token,
                                       "client_id": epn.fake.client_id}).status == 400
    assert epn.post("/token/refresh", {"grant_type": "refresh_token", "refresh_token": refresh_token,
                                       "client_id": "wrong"}).status == 401
    assert epn.post("/token/refresh", {"grant_type": "refresh_token", "refresh_token": ["not", "a", "token"],
                                       "client_id": epn.fake.client_id}).status == 401
    assert epn.refresh(refresh_token).status == 200


@pytest.mark.parametrize(("headers", "status"), [
    ({"Accept": None}, 403), ({"Accept": ""}, 403), ({"X-API-VERSION": None}, 400), ({"X-API-VERSION": "1"}, 400),
])
def test_epn_refuses_calls_without_its_headers(epn, headers, status):
    token, _ = epn.login()
    refused = epn.transactions(token, headers=headers)
    ssid_refused = epn.ssid(headers=headers)
    assert refused.status == ssid_refused.status == status
    if status == 403:
        assert refused.headers["Content-Type"] == "text/html"  # nginx's page, not ePN's JSON


def test_epn_refuses_calls_without_a_user_agent(epn):
    refused = call(f"{epn.fake.oauth_url}/ssid?v=2&client_id={epn.fake.client_id}",
                   headers={"Accept": "application/json", "X-API-VERSION": "2"}, user_agent=False)
    assert refused.status == 403
    assert epn.fake.ssid_calls == 0
    assert epn.ssid(v="1").status == 400


def test_epn_serves_oauth_and_data_on_their_own_bases(epn):
    token, _ = epn.login()
    assert call(f"{epn.fake.oauth_url}/transactions/user", headers=EPN_HEADERS).status == 404
    assert call(f"{epn.fake.api_url}/ssid?v=2", headers=EPN_HEADERS).status == 404
    assert call(f"{epn.fake.api_url}/transactions/user", data=b"{}", headers=EPN_HEADERS).status == 405


@pytest.mark.parametrize("changes", [
    {"tsFrom": None}, {"tsTo": None}, {"tsFrom": "01.02.2025"}, {"tsTo": "2025-1-2"},
    {"statusUpdatedStart": "2025-02-01 00:00:00"}, {"page": "0"}, {"page": "x"}, {"perPage": "-5"},
    {"fields": "order_number,uniq_id"}, {"per_page": "10"},
])
def test_epn_refuses_bad_parameters(epn, changes):
    token, _ = epn.login()
    today = str(moscow_today())
    query = {name: value for name, value in ({"tsFrom": today, "tsTo": today} | changes).items() if value is not None}
    refused = call(f"{epn.fake.api_url}/transactions/user?{urlencode(query)}",
                   headers={**EPN_HEADERS, "X-ACCESS-TOKEN": token})
    assert refused.status == 400, refused.body
    assert refused.json()["errors"][0]["error"] == 400001


def test_epn_ts_from_reaches_at_most_a_year_back(epn):
    token, _ = epn.login()
    today = moscow_today()
    assert epn.transactions(token, tsFrom=str(today - timedelta(days=365))).status == 200
    assert epn.transactions(token, tsFrom=str(today - timedelta(days=366))).status == 400


def test_epn_filters_by_moscow_days_on_order_time_or_status_update(epn):
    day = moscow_today() - timedelta(days=3)
    epn.fake.add("late-evening", time_of_order=moscow(day, 23, 30))
    epn.fake.add("next-day-utc-evening", time_of_order=datetime.combine(day, time(21, 30), UTC))  # 00:30 MSK
    epn.fake.add("old-order-updated", time_of_order=moscow(day - timedelta(days=30)), status_updated=moscow(day))
    token, _ = epn.login()

    def ids(**params):
        response = epn.transactions(token, **params)
        assert response.status == 200, response.body
        return [uniq_id for uniq_id, _, _ in epn.view(response)]

    assert ids(tsFrom=str(day), tsTo=str(day)) == ["late-evening"]
    assert ids(tsFrom=str(day + timedelta(days=1)), tsTo=str(day + timedelta(days=1))) == ["next-day-utc-evening"]
    assert ids(tsFrom=str(day), tsTo=str(day), statusUpdatedStart=str(day), statusUpdatedEnd=str(day)) == [
        "late-evening", "old-order-updated"]
    assert ids(statusUpdatedEnd=str(day - timedelta(days=1))) == []


def test_epn_filters_by_click_offer_and_currency_and_selects_fields(epn):
    epn.fake.add("a", click_id="1", offer_id="10")
    epn.fake.add("b", click_id="2", offer_id="20", currency="USD")
    epn.fake.add("c", click_id="1", offer_id="30")
    token, _ = epn.login()

    def ids(**params):
        return [uniq_id for uniq_id, _, _ in epn.view(epn.transactions(token, **params))]

    assert ids(clickId="1") == ["a", "c"]
    assert ids(offerIds="20,30") == ["b", "c"]
    assert ids(currency="USD") == ["b"]
    selected = epn.transactions(token, fields="order_number,commission_user").json()["data"][0]
    assert selected == {"type": "transaction", "id": "a",
                        "attributes": {"order_number": "N-a", "commission_user": Decimal("5.00")}}


# Admitad.

def test_admitad_issues_a_bearer_token_and_serves_its_record_shape(admitad):
    acted = moscow(moscow_today() - timedelta(days=2), 10, 5)
    admitad.fake.add("555", order_number="SHOP-9", click_id="u-42", status="approved_but_stalled", revenue="1500.50",
                     commission_fee="75.25", currency="USD", time_of_order=acted,
                     status_updated=(acted + timedelta(days=1)).astimezone(UTC), offer_id="77", subid1="spring",
                     click_date=acted - timedelta(minutes=5), paid=1)
    token = admitad.token()
    assert token.status == 200
    assert token.json()["token_type"] == "bearer" and token.json()["expires_in"] == 7 * 86400
    page = admitad.actions(token.json()["access_token"]).json()
    assert page["_meta"] == {"count": 1, "limit": 20, "offset": 0}
    assert page["results"] == [{
        "action_id": 555, "status": "approved_but_stalled", "payment": Decimal("75.25"), "cart": Decimal("1500.50"),
        "currency": "USD", "subid": "u-42", "subid1": "spring", "subid2": None, "subid3": None, "subid4": None,
        "action_date": acted.strftime("%Y-%m-%d 10:05:00"), "click_date": acted.strftime("%Y-%m-%d 10:00:00"),
        "status_updated": (acted + timedelta(days=1)).strftime("%Y-%m-%d 10:05:00"), "order_id": "SHOP-9",
        "advcampaign_id": 77, "advcampaign_name": "Campaign 77", "action_type": "sale", "processed": 1, "paid": 1,
    }]


@pytest.mark.parametrize(("basic", "form", "status", "error"), [
    (("admitad-client-id", "wrong"), {}, 401, "invalid_client"),
    (("wrong", "admitad-client-secret"), {}, 401, "invalid_client"),
    (None, {"client_id": "other"}, 401, "invalid_client"),
    (None, {"scope": "advcampaigns"}, 400, "invalid_scope"),
    (None, {"grant_type": "password"}, 400, "unsupported_grant_type"),
])
def test_admitad_token_refuses_wrong_credentials_in_oauth_style(admitad, basic, form, status, error):
    refused = admitad.token(basic, **form)
    assert refused.status == status and refused.json()["error"] == error


def test_admitad_token_needs_http_basic(admitad):
    form = {"grant_type": "client_credentials", "client_id": admitad.fake.client_id, "scope": "statistics"}
    for authorization in ({}, {"Authorization": "Basic !!!"}, {"Authorization": f"Bearer {admitad.fake.client_id}"}):
        assert call(f"{admitad.fake.url}/token/", data=urlencode(form).encode(), headers=authorization).status == 401
    assert admitad.refresh("made-up").json()["error"] == "invalid_grant"


@pytest.mark.parametrize("params", [
    {"date_start": "2025-02-01"}, {"date_end": "1.2.2025"}, {"status_updated_start": "01.02.2025"},
    {"status_updated_end": "2025-02-01 00:00:00"}, {"status": "4"}, {"processed": "2"}, {"action_type": "click"},
    {"action_id": "x"}, {"offset": "-1"}, {"limit": "501"}, {"website": "5"},
])
def test_admitad_refuses_bad_parameters(admitad, params):
    token, _ = admitad.login()
    refused = admitad.actions(token, **params)
    assert refused.status == 400 and refused.json()["error"] == "invalid_request"


def test_admitad_filters_by_moscow_days_or_status_update_to_the_second(admitad):
    day = moscow_today() - timedelta(days=3)
    admitad.fake.add("1", time_of_order=moscow(day, 23, 30))
    admitad.fake.add("2", time_of_order=datetime.combine(day, time(21, 30), UTC))  # 00:30 MSK the next day
    admitad.fake.add("3", time_of_order=moscow(day - timedelta(days=30)), status_updated=moscow(day, 12, 0))
    token, _ = admitad.login()

    def ids(**params):
        response = admitad.actions(token, **params)
        assert response.status == 200, response.body
        return [uniq_id for uniq_id, _, _ in admitad.view(response)]

    def text(moment):
        return moment.strftime("%d.%m.%Y %H:%M:%S")

    assert ids(date_start=day.strftime("%d.%m.%Y"), date_end=day.strftime("%d.%m.%Y")) == ["1"]
    assert ids(date_start=(day + timedelta(days=1)).strftime("%d.%m.%Y")) == ["2"]
    noon = moscow(day, 12, 0)
    assert ids(status_updated_start=text(noon), status_updated_end=text(noon)) == ["3"]
    assert ids(status_updated_start=text(noon + timedelta(seconds=1))) == ["1", "2"]


def test_admitad_filters_by_status_number_subids_flags_and_campaign(admitad):
    admitad.fake.add("1", status="pending", click_id="a")
    admitad.fake.add("2", status="approved", click_id="b", paid=1, subid2="x")
    admitad.fake.add("3", status="approved_but_stalled", click_id="a", offer_id="9")
    admitad.fake.add("4", status="declined", click_id="b", action_type="lead")
    token, _ = admitad.login()

    def ids(**params):
        return [uniq_id for uniq_id, _, _ in admitad.view(admitad.actions(token, **params))]

    assert ids(status=1) == ["1"] and ids(status=2) == ["2", "3"] and ids(status=3) == ["4"]
    assert ids(subid="a") == ["1", "3"] and ids(subid2="x") == ["2"]
    assert ids(processed=0) == ["1"] and ids(paid=1) == ["2"] and ids(action_type="lead") == ["4"]
    assert ids(campaign=9) == ["3"] and ids(action_id=4) == ["4"]
