"""The write path: one function, `ingest`, takes a raw request and stores it, whatever happens.

Contract of `ingest(raw)`:
- a bad payload is stored as an `invalid` Delivery and reported, never retried;
- a valid payload stores its Order and its Delivery in one transaction; a repeat of the same
  (partner, uniq_id, order_status) stores only the Delivery, as `duplicate`, flagging money that
  differs as a conflict and never touching the Order;
- a database failure is retried (transient errors only) with exponential backoff within
  INGEST_DEADLINE seconds; when that runs out the request is written durably to the spool,
  the admins are alerted (throttled), and the result is `spooled` (`unavailable`, with its own
  alert, if the spool cannot be written either);
- a bug of ours is recorded as an `error` Delivery (where the database allows) and re-raised;
- with OUTBOUND_URL set, a write that moves the order's current status, or newly flags a money conflict,
  also writes its outbound event (orders.outbox), in the same transaction, whatever the source.

Every write of the ledger (Order) and of the delivery log (Delivery) is made here: `ingest` and
`store` for a request, `replay_delivery` for a stored delivery read again, `record_failure` for our
own bugs; `preview` answers what `store` would, writing nothing. A record that reconciliation
(orders.reconcile) reads from a network's API is stored by `store` too, as a request of source
`reconcile` whose body is the record (RawRequest.of_api_record), linked to its run. orders.rows and orders.current are
parts of it, called from here only. Views, the spool drain, replay and tests all call this module;
nothing else writes orders or deliveries (orders.prune only deletes old deliveries, by its rules).
"""

import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NoReturn

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from partners.api import load_record, plain
from partners.base import ParsedOrder, PayloadError
from partners.registry import get_partner

from . import alerts, dberrors, outbox, rows, spool
from .current import refresh_current
from .models import Delivery, Order, ReconcileRun
from .payload import payload_params
from .rawrequest import RawRequest

log = logging.getLogger("epnhook.ingest")

# A duplicate carrying different values in these fields is flagged as a conflict.
CONFLICT_FIELDS = ("revenue", "commission_fee", "currency")

# What ingest() answers when the database could not take the request, so no delivery holds it: it
# is in the spool, or (UNAVAILABLE) neither the database nor the spool took it, and only the
# sender's retry can save it.
SPOOLED = "spooled"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class IngestResult:
    # A Delivery.Outcome, or SPOOLED / UNAVAILABLE (or orders.replay.FAILED, for a replay that raised).
    outcome: str
    delivery_id: int | None = None
    order_id: int | None = None
    error: str = ""
    field: str | None = None
    conflict_fields: tuple[str, ...] = ()
    spool_id: str | None = None
    # The order event's key, for the one log line per postback (a spooled one's too); empty when the
    # payload does not parse.
    uniq_id: str = ""
    order_status: str = ""


def ingest(raw: RawRequest) -> IngestResult:
    """Store `raw`; see the module docstring for the contract. Never loses an accepted request."""
    started = time.monotonic()
    deadline = started + settings.INGEST_DEADLINE
    for attempt in range(1, settings.INGEST_ATTEMPTS + 1):
        try:
            result = store(raw)
        except DatabaseError as error:
            kind = dberrors.classify(error)
            if kind is None:
                _record_bug_and_raise(raw, error)
            discard_connection()
            pause = _backoff(attempt)
            # Stop when another attempt, if it took as long as one can, would overrun the deadline.
            out_of_time = time.monotonic() + pause + longest_attempt() > deadline
            if kind != dberrors.TRANSIENT or attempt == settings.INGEST_ATTEMPTS or out_of_time:
                return _spool(raw, error, kind, attempt)
            _log_retry(raw, error, attempt, pause)
            time.sleep(pause)
        except Exception as error:
            _record_bug_and_raise(raw, error)
        else:
            return result
    raise AssertionError("unreachable: the loop returns on its last attempt")


def longest_attempt() -> float:
    """Seconds one database attempt can take before the driver gives up: a connect (a pooled
    connection's health-check ping, then the reconnect) plus one read the server never answers."""
    read = settings.DATABASE_READ_TIMEOUT or settings.INGEST_DEADLINE  # 0: no read limit at all
    return settings.DATABASE_CONNECT_TIMEOUT + read


def store(raw: RawRequest, *, spool_id: str | None = None, reconcile_run: ReconcileRun | None = None,
          ) -> IngestResult:
    """One attempt at the write path, no retries: database errors propagate to the caller. The delivery
    is linked to `reconcile_run` when reconciliation read it from the network's API."""
    try:
        params, parsed = read_postback(raw)
    except PayloadError as error:
        with transaction.atomic():
            delivery = _create_delivery(raw, Delivery.Outcome.INVALID, spool_id=spool_id, reconcile_run=reconcile_run,
                                        error=error.message, error_field=error.field or "")
        return _invalid(error, delivery.pk)
    with transaction.atomic():
        order, outcome, conflicts, change = save_order(raw.partner, parsed, params, raw.received_at)
        delivery = _create_delivery(raw, outcome, spool_id=spool_id, reconcile_run=reconcile_run, order=order,
                                    conflict_fields=list(conflicts))
        if change:
            outbox.record(change, delivery.pk)
    return IngestResult(outcome, delivery.pk, order.pk, conflict_fields=conflicts, **_key(parsed))


def preview(raw: RawRequest) -> IngestResult:
    """What store(raw) would answer, writing nothing: `invalid` with the reason, or `created`, or
    `duplicate` of the stored order with the fields that differ from it.

    One plain read: a postback stored meanwhile can still turn a previewed `created` into a duplicate.
    """
    try:
        _params, parsed = read_postback(raw)
    except PayloadError as error:
        return _invalid(error)
    order = _stored_order(raw.partner, parsed)
    if order is None:
        return IngestResult(Delivery.Outcome.CREATED, **_key(parsed))
    return IngestResult(Delivery.Outcome.DUPLICATE, order_id=order.pk, conflict_fields=_conflicts(order, parsed),
                        **_key(parsed))


def replay_delivery(delivery: Delivery, *, dry_run: bool = False) -> IngestResult:
    """Read a stored delivery again with the current parser and store its order if that is now
    possible, updating the delivery in place (its outcome, order, conflicts, error and `replayed_at`).

    Never a second order: the order is written by save_order, which answers a repeat as a duplicate.
    A delivery already linked to the order it reads as keeps its outcome: replaying it is a no-op, not
    a duplicate of itself. With dry_run nothing is written and the result is what the replay would answer.
    """
    raw = RawRequest.of_delivery(delivery)
    if dry_run:
        return _as_replay_of(delivery, preview(raw))
    try:
        params, parsed = read_postback(raw)
    except PayloadError as error:
        Delivery.objects.filter(pk=delivery.pk).update(
            outcome=Delivery.Outcome.INVALID, error=error.message, error_field=error.field or "",
            replayed_at=timezone.now(),
        )
        return _invalid(error, delivery.pk)
    with transaction.atomic():
        order, outcome, conflicts, change = save_order(delivery.partner, parsed, params, delivery.received_at)
        result = _as_replay_of(delivery, IngestResult(outcome, order_id=order.pk, conflict_fields=conflicts,
                                                      **_key(parsed)))
        Delivery.objects.filter(pk=delivery.pk).update(
            outcome=result.outcome, order=order, conflict_fields=list(conflicts), error="", error_field="",
            replayed_at=timezone.now(),
        )
        if change:
            outbox.record(change, delivery.pk)
    return result


def read_postback(raw: RawRequest) -> tuple[dict, ParsedOrder]:
    """A request's parameters and what its partner's parser makes of them (with the status its URL
    implied, if any): the one reading shared by live requests, the spool, previews and replay, so a replay
    reads a delivery exactly as it arrived. A record read from the network's API (source `reconcile`) is
    read by the partner's API reader: the parameters are then the record, its amounts as text. Raises
    PayloadError for a bad payload, or for a partner without a parser (a network retired since the request
    was stored)."""
    try:
        partner = get_partner(raw.partner)
    except KeyError:
        raise PayloadError(f"no parser is registered for partner {raw.partner!r}", "partner") from None
    if raw.source == Delivery.Source.RECONCILE:
        try:
            record = load_record(raw.body)
        except ValueError as error:
            raise PayloadError(f"the body is not a record of the network's API: {error}", "body") from None
        return plain(record), partner.read_api_record(record)
    if raw.implied_status:
        partner = partner.implying(raw.implied_status)
    params = payload_params(raw.query_string, raw.body, raw.content_type)
    return params, partner.parse(params)


def save_order(partner: str, parsed: ParsedOrder, params: dict, received_at: datetime,
               ) -> tuple[Order, str, tuple[str, ...], outbox.Change | None]:
    """Insert the order event, or find the stored one if this key was seen; runs inside a transaction.
    Returns the order, the outcome, the money fields in conflict, and (when events are enabled) the change
    the site must hear of: the order's current status moved, or a conflict was newly flagged. The caller
    records it (orders.outbox) in the same transaction, once the delivery it names is written.

    The order is dated by when its postback arrived (`received_at`), not when it was written: a
    postback stored from the spool or by a replay keeps its place among the order's statuses.

    Inserting first and catching the unique-key error (rather than INSERT IGNORE, which on MariaDB
    also turns bad values into mere warnings, or select-then-insert, which races) is what keeps
    concurrent identical postbacks to exactly one row. A refused INSERT undoes only itself (see
    orders.rows), so no savepoint is needed around it.
    """
    values = {name: getattr(parsed, name) for name in ParsedOrder.__dataclass_fields__}
    # Inserted as current: the usual first arrival of an order then needs no UPDATE below.
    order = Order(partner=partner, raw_payload=params, is_current=True, created_at=received_at, **values)
    try:
        rows.insert(order)
    except IntegrityError:
        order = _stored_order(partner, parsed)
        if order is None:
            raise
    else:
        # A new row may change which status of this order is current; same transaction as the insert.
        current = refresh_current(partner, parsed.uniq_id)
        order.is_current = current.pk == order.pk
        # A row that does not become current (a late `waiting` after `completed`) moves nothing.
        change = outbox.Change.status_changed(order, current.previous_status) if (
            order.is_current and outbox.enabled()) else None
        return order, Delivery.Outcome.CREATED, (), change
    conflicts = _conflicts(order, parsed)
    change = None
    if conflicts and not order.has_conflict:
        Order.objects.filter(pk=order.pk).update(has_conflict=True)
        order.has_conflict = True
        change = outbox.Change.conflict(order, parsed, conflicts) if outbox.enabled() else None
    return order, Delivery.Outcome.DUPLICATE, conflicts, change


def _key(parsed: ParsedOrder) -> dict:
    """The order event's key, as IngestResult carries it for the log line."""
    return {"uniq_id": parsed.uniq_id, "order_status": parsed.order_status}


def _stored_order(partner: str, parsed: ParsedOrder) -> Order | None:
    """The stored order event with the key of `parsed`, if there is one."""
    return Order.objects.filter(partner=partner, uniq_id=parsed.uniq_id, order_status=parsed.order_status).first()


def _conflicts(order: Order, parsed: ParsedOrder) -> tuple[str, ...]:
    return tuple(name for name in CONFLICT_FIELDS if getattr(order, name) != getattr(parsed, name))


def _invalid(error: PayloadError, delivery_id: int | None = None) -> IngestResult:
    return IngestResult(Delivery.Outcome.INVALID, delivery_id, error=error.message, field=error.field)


def _as_replay_of(delivery: Delivery, result: IngestResult) -> IngestResult:
    """`result` as the replay of `delivery`: a delivery already linked to the order it names keeps
    its outcome (created or duplicate), since replaying it changed nothing."""
    outcome = result.outcome
    if result.order_id is not None and result.order_id == delivery.order_id:
        stored = (Delivery.Outcome.CREATED, Delivery.Outcome.DUPLICATE)
        outcome = delivery.outcome if delivery.outcome in stored else Delivery.Outcome.CREATED
    return replace(result, delivery_id=delivery.pk, outcome=outcome)


def _create_delivery(raw: RawRequest, outcome: str, *, spool_id: str | None, **extra) -> Delivery:
    source = Delivery.Source.SPOOL if spool_id and raw.source == Delivery.Source.HTTP else raw.source
    delivery = Delivery(
        partner=raw.partner,
        source=source,
        method=raw.method,
        query_string=raw.query_string,
        body=raw.body,
        content_type=raw.content_type[:255],
        remote_addr=raw.remote_addr,
        user_agent=raw.user_agent[:1024],
        headers=raw.headers,
        received_at=raw.received_at,
        implied_status=raw.implied_status,
        outcome=outcome,
        spool_id=spool_id,
        **extra,
    )
    rows.insert(delivery)
    return delivery


def _log_retry(raw: RawRequest, error: DatabaseError, attempt: int, pause: float) -> None:
    """One line per retried attempt, with the error's code: what retries cost stays visible (on a Galera
    cluster, each certification conflict between nodes is one such line with code 1213)."""
    key = _key_of(raw)
    log.warning(
        "postback attempt %d failed, retrying in %d ms: uniq_id=%s status=%s: %s",
        attempt, round(pause * 1000), key.get("uniq_id", "-"), key.get("order_status", "-"), dberrors.describe(error),
        extra={"partner": raw.partner, "attempt": attempt, "error_code": dberrors.error_code(error), **key},
    )


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter, so that many workers do not retry in lockstep."""
    return 0.05 * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)


def discard_connection() -> None:
    """Drop the (probably broken) connection so the next attempt opens a fresh one.

    Inside a caller's transaction the connection is not ours to close; that caller handles it.
    """
    if connection.in_atomic_block:
        return
    try:
        connection.close()
    except DatabaseError:
        connection.connection = None


def _spool(raw: RawRequest, error: DatabaseError, kind: str, attempts: int) -> IngestResult:
    description = dberrors.describe(error)
    key = _key_of(raw)
    try:
        spool_id = spool.write(raw)
    except OSError as spool_error:
        log.critical("database unavailable and the spool unwritable, request refused: %s; %s",
                     description, spool_error, extra={"partner": raw.partner, "outcome": UNAVAILABLE})
        alerts.alert(
            "spool-unwritable",
            "Database unavailable and the spool cannot be written: postbacks are being refused",
            f"Postbacks are answered 503 and kept nowhere; only senders that retry will deliver them again.\n"
            f"Fix the spool directory (disk space, permissions, SPOOL_DIR) and the database.\n\n"
            f"Database error: {description}\nSpool error: {spool_error}",
        )
        return IngestResult(UNAVAILABLE, error=description, **key)
    log.error(
        "database unavailable after %d attempt(s), request spooled as %s: %s",
        attempts, spool_id, description,
        extra={"partner": raw.partner, "outcome": SPOOLED, "spool_id": spool_id},
    )
    subject, advice = dberrors.ALERTS[kind]
    alerts.alert(
        f"database-{kind}",
        subject,
        f"{advice}\n\nError: {description}\nAttempts: {attempts}\n"
        f"The postback was written to the spool ({spool_id}) and will be stored once the database answers.",
    )
    return IngestResult(SPOOLED, error=description, spool_id=spool_id, **key)


def _key_of(raw: RawRequest) -> dict:
    """The order event's key, so that the log line of a postback the database did not take names it:
    parsing needs no database. Empty for a payload that does not parse (it would be stored invalid)."""
    try:
        _params, parsed = read_postback(raw)
    except PayloadError:
        return {}
    return _key(parsed)


def _record_bug_and_raise(raw: RawRequest, error: Exception) -> NoReturn:
    """Keep the request of a failure that is our fault, so it can be replayed once fixed, then re-raise."""
    log.exception("unhandled error while storing a postback", extra={"partner": raw.partner})
    try:
        record_failure(raw, error)
    except Exception:
        log.exception("could not record the failed delivery; spooling it instead")
        spool.write(raw)
    raise error


def record_failure(raw: RawRequest, error: Exception, *, spool_id: str | None = None) -> Delivery:
    """Keep `raw` as an `error` delivery, so that it can be replayed once the failure is fixed."""
    return _create_delivery(raw, Delivery.Outcome.ERROR, spool_id=spool_id, error=f"{type(error).__name__}: {error}")
