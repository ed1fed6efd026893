"""Admitad: its postback, and its statistics API.

Admitad calls the URL the publisher writes in its settings, with macros in triple brackets that it
replaces by the action's values; here every parameter is named after its macro
(`admitad_id=[[[admitad_id]]]&...`: Partner.postback_url gives the whole line to paste). What we know of
the format is in the README ("Admitad postback format"); no signature and no retry policy are documented.

Its API (AdmitadApi, for reconciliation): a client-credentials token (`POST /token/`, HTTP Basic), then
`statistics/actions/`, paged by limit and offset. Its records use the postback's status words; their
fields are named otherwise (`api_fields`): the postback's admitad_id is the record's action_id.

Assumption: times without an offset are in Moscow time, the time zone of a Russian publisher's account;
Admitad's documentation says nothing either way.
"""

from collections.abc import Iterator
from datetime import date, datetime

from django.utils.translation import gettext_lazy as _

from .api import ApiClient, ApiError, Tokens, dig, expires_at, read_json
from .base import ISO_8601, UNIX_SECONDS, Extra, ExtraKind, OrderStatus, ParsedOrder, Partner


class AdmitadApi(ApiClient):
    """Admitad's API: `token/` and `statistics/actions/` at the API base.

    Its logins are not limited, so a session it no longer accepts is simply replaced by a new one.
    """

    page_size = 500  # the largest limit Admitad's own client asks for

    def authorization(self, access_token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token}"}

    def renew(self, tokens: Tokens, now: datetime) -> Tokens:
        what = "Admitad token"
        response = self.http.send(
            "POST", f"{self.api_url}/token/", what=what, auth=(self.client_id, self.client_secret),
            data={"grant_type": "client_credentials", "client_id": self.client_id, "scope": "statistics"})
        answer = read_json(response, what)
        access = dig(answer, "access_token", what=what)
        if not isinstance(access, str) or not access:
            raise ApiError(f"{what}: the answer holds no token")
        refresh = answer.get("refresh_token")
        return Tokens(access, expires_at(answer.get("expires_in"), now), refresh if isinstance(refresh, str) else "")

    def pages(self, since: date, until: date) -> Iterator[list[dict]]:
        # The status-change filter takes times to the second, in the account's time zone: whole days here.
        params = {"status_updated_start": f"{since:%d.%m.%Y} 00:00:00",
                  "status_updated_end": f"{until:%d.%m.%Y} 23:59:59", "limit": self.page_size}
        offset = 0
        while True:
            what = f"Admitad actions from {offset}"
            answer = self.get_json(f"{self.api_url}/statistics/actions/", {**params, "offset": offset}, what=what)
            records, count = dig(answer, "results", what=what), dig(answer, "_meta", "count", what=what)
            if not isinstance(records, list) or not isinstance(count, int):
                raise ApiError(f"{what}: results is not a list, or _meta.count not a number")
            del answer  # memory holds one page: this one goes before the next is read
            if records:
                yield records
            offset += self.page_size
            if not records or offset >= count:
                return
            del records


class Admitad(Partner):
    slug = "admitad"
    name = "Admitad"
    timezone = "Europe/Moscow"
    # Admitad's "pending" is a new action (our waiting), its "hold" our pending.
    statuses = {
        "pending": OrderStatus.WAITING,
        "open": OrderStatus.WAITING,
        "hold": OrderStatus.PENDING,
        "approved": OrderStatus.COMPLETED,
        "approved_but_stalled": OrderStatus.COMPLETED,  # approved, the advertiser has not paid yet
        "declined": OrderStatus.REJECTED,
        "rejected": OrderStatus.REJECTED,
    }
    status_parameter = "payment_status"
    timestamp_formats = ("%Y-%m-%d %H:%M:%S", ISO_8601, "%d.%m.%Y %H:%M:%S", UNIX_SECONDS)
    currencies = None  # whatever the advertiser pays in
    default_currency = None
    extra_fields = (
        Extra("website_id", _("website id")),
        Extra("type", _("action type")),
        # A cashback site pays the user out only once the money is ready.
        Extra("reward_ready", _("reward ready"), ExtraKind.BOOLEAN, beside_money=True),
        Extra("conversion_time", _("conversion time"), ExtraKind.TIMESTAMP),
    )
    parameters = (
        "admitad_id", "order_id", "payment_status", "subid", "subid1", "subid2", "subid3", "subid4",
        "payment_sum", "order_sum", "currency", "reward_ready", "offer_id", "offer_name", "website_id", "type",
        "time", "click_time", "conversion_time", "action_ip", "user_agent",
    )
    macro = ("[[[", "]]]")
    example = {"admitad_id": "3318092817", "order_id": "SHOP-1001", "payment_status": "pending", "subid": "123",
               "payment_sum": "75.50", "order_sum": "1500.00", "currency": "RUB", "reward_ready": "0",
               "offer_id": "12345", "offer_name": "Shop", "type": "sale", "time": "2026-03-01 12:30:00",
               "conversion_time": "2026-03-01 12:31:00"}
    api_client = AdmitadApi
    # A statistics/actions record as postback parameters; its status words are the postback's.
    api_fields = {
        "admitad_id": ("action_id",),
        "order_id": ("order_id",),
        "payment_status": ("status",),
        "subid": ("subid",),
        "subid1": ("subid1",),
        "subid2": ("subid2",),
        "subid3": ("subid3",),
        "subid4": ("subid4",),
        "payment_sum": ("payment",),
        "order_sum": ("cart",),
        "currency": ("currency",),
        "offer_id": ("advcampaign_id",),
        "offer_name": ("advcampaign_name",),
        "type": ("action_type",),
        "time": ("action_date",),
        "click_time": ("click_date",),
    }
    api_id_parameter = "admitad_id"

    def parse(self, params: dict[str, str]) -> ParsedOrder:
        uniq_id = self.text(params, "admitad_id", required=True)
        # The site's own click id: without it nobody can be credited.
        click_id = self.text(params, "subid", required=True)
        order_status, original_status = self.status(params)
        return ParsedOrder(
            uniq_id=uniq_id,
            order_number=self.text(params, "order_id"),  # a lead has no shop order number
            click_id=click_id,
            order_status=order_status,
            original_status=original_status,
            sub=self.text(params, "subid1"),
            sub2=self.text(params, "subid2"),
            sub3=self.text(params, "subid3"),
            sub4=self.text(params, "subid4"),
            offer_id=self.text(params, "offer_id"),
            offer_name=self.text(params, "offer_name"),
            revenue=self.money(params, "order_sum"),
            commission_fee=self.money(params, "payment_sum"),
            currency=self.currency(params),
            ip=self.ip(params, "action_ip"),
            user_agent=self.text(params, "user_agent", max_length=1024),
            time_of_order=self.timestamp(params, "time"),
            click_time=self.timestamp(params, "click_time"),
            extras=self.read_extras(params),
        )
