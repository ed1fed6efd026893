"""HTTP endpoints: the postback receiver, the health probe and the admin's overview page. Thin: the work is in
orders.ingest and orders.overview."""

import logging
import time

from django.conf import settings
from django.contrib import admin
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.http.request import HttpHeaders
from django.template.response import TemplateResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from epnhook.middleware import machine_endpoint
from partners.tokens import (
    log_near_miss,
    partner_for_token,
    seconds_left_in_window,
    tokens_known,
    wrong_token_over_limit,
)

from . import spool, spooldrain
from .clientip import address_allowed, client_ip
from .ingest import SPOOLED, UNAVAILABLE, ingest
from .models import Delivery, Order
from .overview import PERIODS, period_from
from .overview import build as build_overview
from .rawrequest import RawRequest

log = logging.getLogger("epnhook.webhook")

# Request headers worth keeping with a delivery; never cookies or authorisation. Read from META by
# their WSGI names: request.headers would build a mapping of every header on each postback.
KEPT_HEADERS = tuple(
    (name, HttpHeaders.to_wsgi_name(name))
    for name in ("Content-Type", "Content-Length", "User-Agent", "X-Forwarded-For", "X-Forwarded-Proto",
                 "X-Real-Ip", "Accept")
)
# How long a sender should wait before retrying a spooled postback.
RETRY_AFTER_SECONDS = 60


def json_error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


@machine_endpoint
@sensitive_variables("token")  # outermost wrapper, so the argument is hidden in every frame of an error report
@csrf_exempt
def webhook(request, token):
    """Receive one postback: GET or POST to /webhook/<token>. Every answer is JSON."""
    started = time.monotonic()
    if request.method not in ("GET", "POST"):
        response = json_error(405, "method not allowed: use GET or POST")
        response["Allow"] = "GET, POST"
        return response
    client = client_ip(request)
    match = partner_for_token(token)
    if match is not None and not address_allowed(match.partner, client):
        # Answered exactly like a wrong token, so a leaked token tells its holder nothing.
        log.warning("valid %s token from %s, outside its WEBHOOK_ALLOWED_IPS: answered 404", match.partner,
                    client or "an unknown address", extra={"partner": match.partner, "client_ip": client})
        match = None
    if match is None:
        if not tokens_known():
            # Started during a database outage, with no saved copy of the admin's tokens: this may be
            # one, and a 404 could make its network disable our URL.
            return _retry_later(UNAVAILABLE, "webhook tokens cannot be checked now; retry later", 503)
        log_near_miss(request.path, client)
        if wrong_token_over_limit(client):
            response = json_error(429, "too many requests with a wrong token; try again later")
            response["Retry-After"] = str(seconds_left_in_window())
            return response
        # 404, never 410: senders read 410 as "disable this URL".
        return json_error(404, "not found")
    if len(request.META.get("QUERY_STRING", "")) > settings.WEBHOOK_MAX_QUERY_BYTES:
        return json_error(413, f"query string longer than {settings.WEBHOOK_MAX_QUERY_BYTES} bytes", field="query")
    body = _read_body(request)
    if body is None:
        return json_error(413, f"body larger than {settings.WEBHOOK_MAX_BODY_BYTES} bytes", field="body")

    partner = match.partner
    result = ingest(RawRequest(
        partner=partner,
        implied_status=match.implied_status,
        method=request.method,
        query_string=request.META.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace"),
        body=body,
        content_type=request.META.get("CONTENT_TYPE", ""),
        remote_addr=client,
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        headers={name: request.META[key] for name, key in KEPT_HEADERS if key in request.META},
    ))
    milliseconds = round((time.monotonic() - started) * 1000, 1)
    # One line per postback; the fields are in the text too, since the text formatter shows no extras.
    log.info(
        "postback %s partner=%s uniq_id=%s status=%s ms=%s delivery_id=%s",
        result.outcome, partner, result.uniq_id or "-", result.order_status or "-", milliseconds,
        result.delivery_id or "-",
        extra={"partner": partner, "outcome": result.outcome, "order_id": result.order_id,
               "delivery_id": result.delivery_id, "ms": milliseconds, "uniq_id": result.uniq_id,
               "status": result.order_status, "spool_id": result.spool_id},
    )
    if result.outcome not in (SPOOLED, UNAVAILABLE):
        # The database has just answered: store what an outage left in the spool (as /health does).
        spooldrain.drain_in_background_if_pending()
    if result.outcome in (Delivery.Outcome.CREATED, Delivery.Outcome.DUPLICATE):
        return JsonResponse({"status": result.outcome, "order_id": result.order_id,
                             "delivery_id": result.delivery_id})
    if result.outcome == Delivery.Outcome.INVALID:
        return json_error(400, result.error, field=result.field, delivery_id=result.delivery_id)
    if result.outcome == SPOOLED:
        return _retry_later(SPOOLED, "database unavailable; the postback was saved and will be stored",
                            settings.SPOOL_ACK_STATUS)
    if result.outcome == UNAVAILABLE:
        # Never SPOOL_ACK_STATUS here: nothing was kept, so the sender must retry.
        return _retry_later(UNAVAILABLE, "database unavailable; retry later", 503)
    raise AssertionError(f"unexpected ingest outcome {result.outcome!r}")


def _retry_later(status: str, message: str, http_status: int) -> JsonResponse:
    response = JsonResponse({"status": status, "error": message}, status=http_status)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _read_body(request) -> bytes | None:
    """The request body, or None when it is over the limit (a declared length is checked before
    anything is read)."""
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    if _chunked(request):
        # Django reads exactly Content-Length bytes, so it would see a chunked body as empty and the
        # postback would be stored without it. The server has de-chunked the stream and marks its
        # end (wsgi.input_terminated), so it is read directly, still bounded by the limit.
        stream = request.environ["wsgi.input"]
    else:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return None
        stream = request
    body = stream.read(limit + 1)
    return None if len(body) > limit else body


def _chunked(request) -> bool:
    return (
        not request.META.get("CONTENT_LENGTH")
        and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        and bool(request.environ.get("wsgi.input_terminated"))
    )


@machine_endpoint
def health(request):
    """200 when the database answers, 503 when it does not, with the spool backlog either way; never
    reveals configuration. A load balancer sends postbacks to the replicas that answer 200."""
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            # A read of a table, not a bare SELECT 1: a Galera node cut off from the cluster's majority, or
            # still joining it, answers SELECT 1 but refuses every table (error 1047), writes included.
            cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(Order._meta.db_table)} LIMIT 1")
        database = "ok"
    except DatabaseError:
        database = "error"
    body = {
        "status": "ok" if database == "ok" else "error",
        "database": database,
        "database_ms": round((time.monotonic() - started) * 1000, 1),
        "spool_backlog": spool.backlog(),
    }
    if database == "ok":
        # The container's probe calls this every few seconds: it drains the spool after an outage
        # even when no sender retries and no new postback arrives.
        spooldrain.drain_in_background_if_pending()
    return JsonResponse(body, status=200 if database == "ok" else 503)


def overview(request):
    """The admin's front page (epnhook.urls): the overview for staff who may read the orders, Django's list
    of applications for any other staff member. The figures come from orders.overview."""
    if not request.user.has_perm("orders.view_order"):
        return admin.site.index(request)
    data = build_overview(period_from(request.GET.get("days")))
    context = {
        **admin.site.each_context(request),
        "title": gettext("Overview"),
        "overview": data,
        "periods": PERIODS,
    }
    return TemplateResponse(request, "admin/overview.html", context)
