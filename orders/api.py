"""The read-only API over HTTP: typed views that django-ninja turns into routes and an OpenAPI schema.

The views only translate: the queries, the cursor contract and the keys live in orders.readapi. Every
route needs `Authorization: Bearer <key>` (an ApiKey made in the admin); the schema at
/api/v1/openapi.json is public, as it describes the contract and holds no data. Only GET routes exist,
so a write answers 405 whatever the key. The API runs past the browser middleware (sessions, CSRF,
login lockout: epnhook.middleware), as the webhook does: a consumer is a program with a key, not a
staff member.
"""

from datetime import datetime

from django.http import HttpRequest
from ninja import NinjaAPI, Query, Schema
from ninja.errors import HttpError
from ninja.renderers import BaseRenderer
from ninja.security import HttpBearer
from pydantic import AwareDatetime, BaseModel, Field
from pydantic_core import to_json

from epnhook.middleware import machine_endpoint
from partners.base import OrderStatus

from . import readapi
from .models import ApiKey


class KeyAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        return readapi.authenticate(token)


# The answers are plain pydantic models: they validate the dicts of orders.readapi natively, where
# ninja's Schema reads each field through its Django-object getter (half the time of a 1000-order page).
class OrderEvent(BaseModel):
    """One status of an order as the network sent it, with the money of that postback."""

    status: OrderStatus
    original_status: str = Field(description="The network's own status word; empty when its URL implied it.")
    revenue: str | None = Field(description="A decimal number as a string, with all its stored places.")
    commission_fee: str | None = Field(description="Our commission, which cashback is paid from; as revenue.")
    currency: str = Field(description="ISO 4217 code (TON for Toncoin).")
    conflict: bool = Field(description="A later postback of this status carried different money.")
    current: bool
    received_at: datetime


class OrderOut(BaseModel):
    """An order at its current status."""

    partner: str
    uniq_id: str
    order_number: str
    click_id: str = Field(description="The site's user, as it put it in the affiliate link.")
    offer_id: str
    offer_name: str
    status: OrderStatus
    original_status: str
    revenue: str | None
    commission_fee: str | None
    currency: str
    conflict: bool
    time_of_order: datetime | None
    received_at: datetime = Field(description="When the current status arrived.")
    updated_at: datetime = Field(description="The order's position in the list: its last change.")


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; on the last page, keep it to ask later for what "
                    "changed since. Null only when nothing has been returned yet.")
    has_more: bool


class OrderDetail(OrderOut):
    history: list[OrderEvent] = Field(description="Every status event of the order, in arrival order.")


class Error(BaseModel):
    detail: str


class OrderFilters(Schema):
    partner: str | None = None
    click_id: str | None = None
    status: OrderStatus | None = None
    updated_since: AwareDatetime | None = Field(None, description="Only orders changed at or after this time.")
    cursor: str | None = Field(None, description="The `next_cursor` of the previous page.")
    limit: int = Field(readapi.DEFAULT_LIMIT, ge=1, le=readapi.MAX_LIMIT)


class JSONRenderer(BaseRenderer):
    """JSON by pydantic's encoder: times keep their microseconds (ninja's default, Django's encoder,
    cuts them to milliseconds) and a 1000-order page encodes in a fraction of the time."""

    media_type = "application/json"

    def render(self, request, data, *, response_status):
        return to_json(data)


api = NinjaAPI(
    title="epnhook read API",
    version="1",
    description="The ledger of affiliate orders, read-only. See the README's API section for the cursor "
                "contract.",
    auth=KeyAuth(),
    urls_namespace="api_v1",
    renderer=JSONRenderer(),
    # No interactive docs page: ninja's would load its scripts from a CDN unless served as static files,
    # and the JSON schema is what consumers' tools read.
    docs_url=None,
)


@api.get("/orders", response={200: OrderPage, 400: Error, 401: Error}, summary="Orders at their current status")
def list_orders(request, filters: Query[OrderFilters]):
    """Current orders, oldest change first, by keyset pages (see `next_cursor`)."""
    try:
        page = readapi.list_orders(**filters.model_dump())
    except readapi.CursorError as error:
        raise HttpError(400, str(error)) from error
    return {"items": page.orders, "next_cursor": page.next_cursor, "has_more": page.has_more}


@api.get("/orders/{partner}/{path:uniq_id}", response={200: OrderDetail, 401: Error, 404: Error},
         summary="One order with its status history")
def order_detail(request, partner: str, uniq_id: str):
    order = readapi.order_history(partner, uniq_id)
    if order is None:
        raise HttpError(404, "no such order")
    return order


def urls():
    """The API's URL patterns, each view marked as a machine endpoint."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        machine_endpoint(pattern.callback)
    return patterns, app_name, namespace
