"""EPN.bz (ePN): its postback, its transactions API, and the status words of each.

The postback's parameter list is the one the original service accepted "according to the official
documentation" (see README, "EPN.bz postback format"). ePN reports times in Moscow time. Parameters it does
not know are not an error: they stay in the order's stored raw payload.

ePN calls the URL it is given with its own parameters appended, so the URL to paste into its dashboard
is the bare webhook URL (no macros).

Its API (EpnApi, for reconciliation; see README, "Reconciliation") is known from open-source clients only,
none of it checked against a live account: a three-step login of ePN's own (an `ssid` that ePN gives about
once a day per address, then a token pair, then refreshes of it), and `transactions/user`, paged. Its
records name things differently from the postback (`api_fields`), and use other status words
(`api_statuses`). Which API field is the postback's uniq_id is not documented: `transactionId`, else the
record's `id`, is the best public evidence; a dry run on a real account settles it.
"""

import hashlib
import logging
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import IntegerChoices
from django.utils.translation import gettext_lazy as _

from .api import ApiClient, ApiError, Tokens, dig, expires_at, read_json
from .base import Extra, ExtraKind, OrderStatus, ParsedOrder, Partner

log = logging.getLogger("epnhook.api")

OPTIONAL_TEXT = ("offer_name", "offer_id", "sub", "sub2", "sub3", "sub4", "sub5")
# ePN refuses a call without its API version, as a header and, on the ssid call, as `v`.
API_VERSION = "2"
# tsFrom, which transactions/user requires, may reach this far back and no further.
TS_FROM_REACH = timedelta(days=365)


class EpnApi(ApiClient):
    """ePN's API: `ssid`, `token` and `token/refresh` at the OAuth base, `transactions/user` at the API base.

    A new ssid is what ePN limits (about one a day per address, then a 429 with a captcha), so the session
    is renewed by its refresh token whenever there is one, and a login happens only when ePN refuses that.
    """

    page_size = 1000  # perPage's maximum
    # The fields asked for: those api_fields reads, and transaction_time, ePN's time of the last change.
    fields = ("transactionId", "order_number", "order_status", "order_time", "transaction_time", "revenue",
              "commission_user", "currency", "user_click_id", "click_id", "offer_id", "offer_type", "type_id",
              "sub1", "sub2", "sub3", "sub4", "sub5")

    def __init__(self, *, oauth_url: str, **common):
        super().__init__(**common)
        self.oauth_url = oauth_url

    def authorization(self, access_token: str) -> dict[str, str]:
        return {"X-API-VERSION": API_VERSION, "X-ACCESS-TOKEN": access_token}

    def renew(self, tokens: Tokens, now: datetime) -> Tokens:
        if tokens.refresh_token:
            response = self.http.send(
                "POST", f"{self.oauth_url}/token/refresh", what="EPN.bz token refresh",
                headers={"X-API-VERSION": API_VERSION},
                json={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token,
                      "client_id": self.client_id},
            )
            if response.status_code == 200:
                return self._session(response, "EPN.bz token refresh", now)
            if not 400 <= response.status_code < 500:
                read_json(response, "EPN.bz token refresh")  # raises ApiError naming the answer
            log.info("EPN.bz refused the stored refresh token (%s); logging in again", response.status_code)
        return self._login(now)

    def _login(self, now: datetime) -> Tokens:
        ssid = self.http.send("GET", f"{self.oauth_url}/ssid", what="EPN.bz ssid", retry_throttled=False,
                              headers={"X-API-VERSION": API_VERSION},
                              params={"v": API_VERSION, "client_id": self.client_id})
        if ssid.status_code == 429:
            raise ApiError(
                "EPN.bz refused a new ssid (429 Too Many Requests): it gives about one ssid a day per address "
                "(then asks for a captcha), and the stored refresh token, if any, was refused. The next run logs "
                "in again; if this repeats, wait a day before running again.")
        ssid_token = dig(read_json(ssid, "EPN.bz ssid"), "data", "attributes", "ssid_token", what="EPN.bz ssid")
        response = self.http.send(
            "POST", f"{self.oauth_url}/token", what="EPN.bz login", headers={"X-API-VERSION": API_VERSION},
            json={"grant_type": "client_credential", "client_id": self.client_id, "client_secret": self.client_secret,
                  "ssid_token": ssid_token, "check_ip": False},
        )
        return self._session(response, "EPN.bz login", now)

    @staticmethod
    def _session(response, what: str, now: datetime) -> Tokens:
        attributes = dig(read_json(response, what), "data", "attributes", what=what)
        access, refresh = (dig(attributes, name, what=what) for name in ("access_token", "refresh_token"))
        if not isinstance(access, str) or not access or not isinstance(refresh, str):
            raise ApiError(f"{what}: the answer holds no token")
        return Tokens(access, expires_at(attributes.get("expires_in"), now), refresh)

    def pages(self, since: date, until: date) -> Iterator[list[dict]]:
        # Interpretation: statusUpdatedStart/End select by the time of the last status change; tsFrom and
        # tsTo, which ePN requires, may select by the order's time as well, so tsFrom reaches as far back as
        # ePN allows: an order bought months ago whose status changed in the window is still read.
        today = datetime.now(ZoneInfo(EpnBz.timezone)).date()
        params = {"tsFrom": str(today - TS_FROM_REACH), "tsTo": str(today),
                  "statusUpdatedStart": str(since), "statusUpdatedEnd": str(until), "perPage": self.page_size,
                  "fields": ",".join(self.fields)}
        page = 1
        while True:
            what = f"EPN.bz transactions page {page}"
            answer = self.get_json(f"{self.api_url}/transactions/user", {**params, "page": page}, what=what)
            records = dig(answer, "data", what=what)
            if not isinstance(records, list):
                raise ApiError(f"{what}: data is not a list")
            has_next = records and dig(answer, "meta", "hasNext", what=what) is True
            del answer  # memory holds one page: this one goes before the next is read
            if records:
                yield records
            if not has_next:
                return
            del records
            page += 1


class OfferType(IntegerChoices):
    """ePN's type_id, kept in Order.extras."""

    STANDARD = 1, _("standard")
    REFERRAL = 2, _("referral")
    OFFLINE = 3, _("offline")


class EpnBz(Partner):
    slug = "epn_bz"
    name = "EPN.bz"
    timezone = "Europe/Moscow"
    # The postback's words, and the transactions API's approved/declined/canceled, which a postback may
    # carry too (see the README).
    statuses = {
        "waiting": OrderStatus.WAITING,
        "pending": OrderStatus.PENDING,
        "hold": OrderStatus.PENDING,
        "completed": OrderStatus.COMPLETED,
        "approved": OrderStatus.COMPLETED,
        "confirmed": OrderStatus.COMPLETED,
        "rejected": OrderStatus.REJECTED,
        "declined": OrderStatus.REJECTED,
        "canceled": OrderStatus.REJECTED,
        "cancelled": OrderStatus.REJECTED,
    }
    # The transactions API's words, which are not the postback's: its "pending" is a new order (our
    # waiting), where the postback's "pending" is an order on hold. The postback's other words are read
    # as the postback means them.
    api_statuses = {
        "pending": OrderStatus.WAITING,
        "hold": OrderStatus.PENDING,
        "approved": OrderStatus.COMPLETED,
        "completed": OrderStatus.COMPLETED,
        "rejected": OrderStatus.REJECTED,
        "canceled": OrderStatus.REJECTED,
        # The postback's own words.
        "waiting": OrderStatus.WAITING,
        "confirmed": OrderStatus.COMPLETED,
        "declined": OrderStatus.REJECTED,
        "cancelled": OrderStatus.REJECTED,
    }
    currencies = ("RUB", "USD", "EUR", "GBP", "TON")
    default_currency = "RUB"
    extra_fields = (
        Extra("type_id", _("offer type"), ExtraKind.INTEGER, choices=tuple(OfferType.choices)),
        Extra("offer_type", _("offer tag")),
        Extra("ipv6", _("click IPv6"), ExtraKind.IPV6),
    )
    parameters = (
        "click_id", "order_number", "uniq_id", "order_status", "offer_name", "offer_type", "offer_id", "type_id",
        "sub", "sub2", "sub3", "sub4", "sub5", "revenue", "commission_fee", "currency", "ip", "ipv6", "user_agent",
        "click_time", "time_of_order",
    )
    example = {"click_id": "123", "order_number": "ORDER-001", "uniq_id": "EPN-12345", "order_status": "waiting",
               "revenue": "1500", "commission_fee": "100"}
    api_client = EpnApi
    # A transactions/user record, {"type", "id", "attributes": {...}}, as postback parameters. Which of
    # user_click_id and click_id carries the site's click id is not documented either; the first that is set.
    api_fields = {
        "uniq_id": ("attributes.transactionId", "id"),
        "click_id": ("attributes.user_click_id", "attributes.click_id"),
        "order_number": ("attributes.order_number",),
        "order_status": ("attributes.order_status",),
        "revenue": ("attributes.revenue",),
        "commission_fee": ("attributes.commission_user",),
        "currency": ("attributes.currency",),
        "time_of_order": ("attributes.order_time",),
        "offer_id": ("attributes.offer_id",),
        "offer_type": ("attributes.offer_type",),
        "type_id": ("attributes.type_id",),
        "sub": ("attributes.sub1",),
        "sub2": ("attributes.sub2",),
        "sub3": ("attributes.sub3",),
        "sub4": ("attributes.sub4",),
        "sub5": ("attributes.sub5",),
    }

    def parse(self, params: dict[str, str]) -> ParsedOrder:
        click_id = self.text(params, "click_id", required=True)
        order_number = self.text(params, "order_number", required=True)
        order_status, original_status = self.status(params)
        offer = {name: self.text(params, name) for name in OPTIONAL_TEXT}
        uniq_id = self.text(params, "uniq_id")
        return ParsedOrder(
            uniq_id=uniq_id or derive_uniq_id(offer["offer_id"], order_number),
            uniq_id_derived=not uniq_id,
            order_number=order_number,
            click_id=click_id,
            order_status=order_status,
            original_status=original_status,
            revenue=self.money(params, "revenue"),
            commission_fee=self.money(params, "commission_fee"),
            currency=self.currency(params),
            ip=self.ip(params, "ip"),
            user_agent=self.text(params, "user_agent", max_length=1024),
            click_time=self.timestamp(params, "click_time"),
            time_of_order=self.timestamp(params, "time_of_order"),
            extras=self.read_extras(params),
            **offer,
        )


def derive_uniq_id(offer_id: str, order_number: str) -> str:
    """A stable key for a postback without uniq_id: order numbers are unique only within an offer.

    Hashed so that any offer_id and order_number, however long or odd, give a fixed-size key that
    cannot collide with ePN's own ids (those never start with "derived-").
    """
    digest = hashlib.sha256(f"{offer_id}\x1f{order_number}".encode()).hexdigest()[:40]
    return f"derived-{digest}"
