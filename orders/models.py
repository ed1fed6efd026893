"""The ledger: one Order row per (partner, uniq_id, order_status), one Delivery row per request.

Delivery is the raw log (dj-stripe's WebhookEventTrigger): every authenticated request is kept as it
arrived, with what became of it, so that any postback can be replayed after a parser fix. Order
is what the business pays cashback from; its values are written once and never overwritten, and
only its two flags (current, conflict) change later, each change stamped in `updated_at`.

ReconcileRun records one run of `manage.py reconcile` against a network's API (orders.reconcile): an
order event the network lists and the ledger lacks is stored as a Delivery of source `reconcile` that
keeps the API's record, linked to its run.
"""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from partners.base import (
    MAX_TEXT_LENGTH,
    MONEY_DECIMAL_PLACES,
    MONEY_INTEGER_DIGITS,
    STATUS_WORD_LENGTH,
    OrderStatus,
)

from .fields import ExactCharField


def money_field(verbose_name):
    return models.DecimalField(
        verbose_name,
        max_digits=MONEY_INTEGER_DIGITS + MONEY_DECIMAL_PLACES,
        decimal_places=MONEY_DECIMAL_PLACES,
        null=True,
        blank=True,
    )


class OrderQuerySet(models.QuerySet):
    def update(self, **values):
        """Every UPDATE of orders sets updated_at, unless it sets it itself: auto_now applies to save()
        only, and the write path changes orders with UPDATE (the current flag, the conflict flag)."""
        values.setdefault("updated_at", timezone.now())
        return super().update(**values)


class Order(models.Model):
    partner = models.CharField(_("partner"), max_length=32)
    uniq_id = ExactCharField(_("unique id"), max_length=MAX_TEXT_LENGTH)
    # True when the network sent no uniq_id and the key was derived from offer_id + order_number.
    uniq_id_derived = models.BooleanField(_("unique id derived"), default=False)
    # Empty for an action that has no shop order, such as an Admitad lead.
    order_number = ExactCharField(_("order number"), max_length=MAX_TEXT_LENGTH, blank=True)
    click_id = ExactCharField(_("click id (user)"), max_length=MAX_TEXT_LENGTH)
    order_status = models.CharField(_("status"), max_length=16, choices=OrderStatus.choices)
    # The status word exactly as the network sent it (stripped), which order_status translates; empty
    # when the URL the network called implied the status (a token with Delivery.implied_status).
    original_status = models.CharField(_("status as sent"), max_length=STATUS_WORD_LENGTH, blank=True)
    offer_name = models.CharField(_("offer name"), max_length=MAX_TEXT_LENGTH, blank=True)
    offer_id = models.CharField(_("offer id"), max_length=MAX_TEXT_LENGTH, blank=True)
    sub = models.CharField("sub", max_length=MAX_TEXT_LENGTH, blank=True)
    sub2 = models.CharField("sub2", max_length=MAX_TEXT_LENGTH, blank=True)
    sub3 = models.CharField("sub3", max_length=MAX_TEXT_LENGTH, blank=True)
    sub4 = models.CharField("sub4", max_length=MAX_TEXT_LENGTH, blank=True)
    sub5 = models.CharField("sub5", max_length=MAX_TEXT_LENGTH, blank=True)
    revenue = money_field(_("revenue"))
    commission_fee = money_field(_("commission"))
    # An ISO 4217 code. No choices: each partner says which codes it accepts (partners.base).
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    ip = models.GenericIPAddressField(_("click IP"), null=True, blank=True)
    user_agent = models.CharField(_("click user agent"), max_length=1024, blank=True)
    click_time = models.DateTimeField(_("click time"), null=True, blank=True)
    time_of_order = models.DateTimeField(_("time of order"), null=True, blank=True)
    # The values a network sends beyond the fields above, typed as its parser validated them (strings,
    # integers, booleans; times as ISO 8601 with an offset), e.g. EPN.bz's offer type or Admitad's
    # reward_ready. A JSON document rather than columns: the ledger serves every network, and each
    # column (with its index) would cost every postback of every network.
    extras = models.JSONField(_("network's own values"), default=dict, blank=True)
    # Every parameter of the first delivery, including ones no parser knows yet.
    raw_payload = models.JSONField(_("raw payload"), default=dict)
    # Set when a later delivery of the same key carried different money; the row itself stays.
    has_conflict = models.BooleanField(_("conflict"), default=False)
    # When, and by whom, staff looked at the conflict (the admin's "mark conflict as looked at"): a
    # conflict stays on the overview and in check_health until somebody has.
    conflict_reviewed_at = models.DateTimeField(_("conflict looked at"), null=True, blank=True)
    conflict_reviewed_by = models.CharField(_("conflict looked at by"), max_length=150, blank=True)
    # True on the one row of its (partner, uniq_id) that states the order's status now (see
    # orders.current). Kept by the write path in the same transaction as the insert, so that the
    # admin's "current only" view is an index range instead of a per-key search over a million rows.
    is_current = models.BooleanField(_("current"), default=False)
    created_at = models.DateTimeField(_("received"), default=timezone.now)
    # When the row last changed (inserted, or a flag above set or cleared): auto_now on the insert,
    # OrderQuerySet.update on every later write.
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        permissions = [("review_conflict", _("Can mark a conflict as looked at"))]
        constraints = [
            # The idempotency key: a network resends the same status of the same order; that is one
            # event, and paying it twice is the failure this whole service exists to prevent.
            models.UniqueConstraint(fields=["partner", "uniq_id", "order_status"], name="order_unique_event"),
        ]
        indexes = [
            # A network's orders of one status, newest first: the order list filtered by both (and any
            # other filter, checked on the rows it reads); it also serves what (partner, order_status)
            # served before it, as its prefix.
            models.Index(fields=["partner", "order_status", "created_at"], name="order_partner_status_created"),
            # Staff look orders up by the user, by the shop's order number and by ePN's id alone.
            models.Index(fields=["click_id"], name="order_click_id"),
            models.Index(fields=["order_number"], name="order_order_number"),
            models.Index(fields=["uniq_id"], name="order_uniq_id"),
            models.Index(fields=["created_at"], name="order_created_at"),
            # The admin lists newest first (created_at, id); each of its filters gets an index that
            # yields rows already in that order, so a page reads 100 rows, not a million, even for a
            # rare value (a TON order among a million roubles). Postbacks are few; the writes are cheap.
            models.Index(fields=["order_status", "created_at"], name="order_status_created"),
            models.Index(fields=["is_current", "created_at"], name="order_current_created"),
            models.Index(fields=["has_conflict", "created_at"], name="order_conflict_created"),
            # Also what lists the currency filter's choices: SELECT DISTINCT currency is a loose scan of
            # this index, or of the next one, on MariaDB (one probe per currency), not a read of the table.
            models.Index(fields=["currency", "created_at"], name="order_currency_created"),
            # Orders of a currency and a status, newest first ("completed in TON"): of the order list's
            # combinations, the one whose two filters are each too common for the other's index to find
            # a page, or count it, without reading most of the table at several million orders.
            models.Index(fields=["currency", "order_status", "created_at"], name="order_currency_status_created"),
            models.Index(fields=["partner", "created_at"], name="order_partner_created"),
            # The "time of order" date range filter.
            models.Index(fields=["time_of_order"], name="order_time_of_order"),
            # The read API (orders.readapi) walks the current rows in (updated_at, id) order by keyset:
            # "after this cursor" must be one index range that yields rows already in that order, so that
            # a page deep in a million orders reads its 100 rows and not everything before it. Each of
            # its filters that can match many rows (partner, status, both) gets such an index of its
            # own; a click id matches a user's few orders, which order_click_id finds and sorts cheaply.
            # id is in the index (InnoDB would append it anyway) because it breaks ties of updated_at.
            models.Index(fields=["is_current", "updated_at", "id"], name="order_api_updated"),
            models.Index(fields=["is_current", "partner", "updated_at", "id"], name="order_api_partner"),
            models.Index(fields=["is_current", "order_status", "updated_at", "id"], name="order_api_status"),
            models.Index(fields=["is_current", "partner", "order_status", "updated_at", "id"],
                         name="order_api_partner_status"),

            # Which orders changed since the daily summary's last refresh (orders.summary): a short range
            # at the end of the index, whatever the created_at of the rows (a spooled postback keeps the
            # time it was received).
            models.Index(fields=["updated_at"], name="order_updated_at"),
        ]

    def __str__(self):
        return f"{self.partner} {self.uniq_id} {self.order_status}"


class OrderVersion(models.Model):
    """One row per order (partner, uniq_id), which every transaction that stores a status event of the
    order writes (orders.current), so that two such transactions always touch one row in common.

    On one server that row's lock makes them take turns; on a Galera cluster, where locks are local to
    each node, two of them on different nodes both write the row, so one fails certification and is
    retried (docs/SCALING.md). Either way, the one that commits last has seen every status of the order
    when it decides which is current. The row is created by the first status event that needs it:
    orders stored before it existed get theirs with their next status.
    """

    # The key itself: the table is only ever reached by it, and Galera needs a primary key on every table.
    pk = models.CompositePrimaryKey("partner", "uniq_id")
    partner = models.CharField(_("partner"), max_length=32)
    uniq_id = ExactCharField(_("unique id"), max_length=MAX_TEXT_LENGTH)
    # Incremented by each write: a write that changes nothing would not be replicated, and so could not
    # conflict with anything.
    version = models.PositiveBigIntegerField(_("version"), default=1)

    class Meta:
        verbose_name = _("order version")
        verbose_name_plural = _("order versions")

    def __str__(self):
        return f"{self.partner} {self.uniq_id} v{self.version}"


class ReconcileRun(models.Model):
    """One run of `manage.py reconcile` for one network: its window, what it found, and how it ended.

    The counts are written after each page, so a run that stopped part-way shows how far it got. A dry
    run writes nothing, and so has no row.
    """

    class State(models.TextChoices):
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")

    partner = models.CharField(_("partner"), max_length=32)
    # The window: the dates (in the network's time zone, both included) of the status changes asked for.
    since = models.DateField(_("window from"))
    until = models.DateField(_("window to"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.RUNNING)
    # Who started it: the admin user, or the system user for cron and the command line.
    started_by = models.CharField(_("started by"), max_length=150, blank=True)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    pages = models.PositiveIntegerField(_("pages read"), default=0)
    fetched = models.PositiveIntegerField(_("records fetched"), default=0)
    stored = models.PositiveIntegerField(_("events stored"), default=0)
    conflicts = models.PositiveIntegerField(_("conflicts"), default=0)
    mismatches = models.PositiveIntegerField(_("id mismatches"), default=0)
    unknown = models.PositiveIntegerField(_("unknown to the network"), default=0)
    malformed = models.PositiveIntegerField(_("malformed records"), default=0)
    # The findings one by one (orders.reconcile.Finding as JSON), up to REPORT_LIMIT; `omitted` counts the rest.
    report = models.JSONField(_("report"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("reconciliation run")
        verbose_name_plural = _("reconciliation runs")
        permissions = [("start_reconcilerun", _("Can start a reconciliation run"))]
        indexes = [
            # The admin lists runs newest first.
            models.Index(fields=["started_at"], name="reconcile_started"),
            # "Where did the last successful run of this network end?": every run's window starts from
            # it, and check_health asks it for each network every minute.
            models.Index(fields=["partner", "state", "finished_at"], name="reconcile_partner_state"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.partner} {self.since}..{self.until}"


class Delivery(models.Model):
    """One authenticated request, as received, and what became of it. A record read from a network's API
    by reconciliation is kept the same way: its JSON as the body, source `reconcile`, linked to its run."""

    class Outcome(models.TextChoices):
        CREATED = "created", _("created")
        DUPLICATE = "duplicate", _("duplicate")
        INVALID = "invalid", _("invalid")
        ERROR = "error", _("error")

    class Source(models.TextChoices):
        HTTP = "http", _("HTTP request")
        SPOOL = "spool", _("HTTP request, stored from the spool")
        MANUAL = "manual", _("entered by hand")
        RECONCILE = "reconcile", _("the network's API, by reconciliation")

    partner = models.CharField(_("partner"), max_length=32)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices, default=Source.HTTP)
    method = models.CharField(_("method"), max_length=8)
    query_string = models.TextField(_("query string"), blank=True)
    body = models.BinaryField(_("body"), blank=True, default=b"")
    content_type = models.CharField(_("content type"), max_length=255, blank=True)
    remote_addr = models.GenericIPAddressField(_("sender address"), null=True, blank=True)
    user_agent = models.CharField(_("sender user agent"), max_length=1024, blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    error = models.TextField(_("error"), blank=True)
    error_field = models.CharField(_("field at fault"), max_length=64, blank=True)
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries"
    )
    # Names of money fields that differed from the stored order on a duplicate.
    conflict_fields = models.JSONField(_("conflicting fields"), default=list, blank=True)
    # The spool entry this delivery was stored from; unique so that draining twice stores it once.
    spool_id = models.CharField(_("spool entry"), max_length=64, null=True, blank=True, unique=True)
    processed_at = models.DateTimeField(_("processed"), default=timezone.now)
    # The status the request's URL implied (its token's, see partners.models.NetworkToken), read by the
    # parser in place of a status word: kept so that a replay reads the request exactly as it arrived.
    implied_status = models.CharField(_("status implied by the URL"), max_length=16, choices=OrderStatus.choices,
                                      blank=True)
    # Set each time the delivery is run again through the parser (replay after a fix).
    replayed_at = models.DateTimeField(_("replayed"), null=True, blank=True)
    # The reconciliation run that read this record from the network's API (source `reconcile`). PROTECT:
    # a run is the account of where its deliveries came from, and runs are never deleted.
    reconcile_run = models.ForeignKey(
        ReconcileRun, verbose_name=_("reconciliation run"), on_delete=models.PROTECT, null=True, blank=True,
        related_name="deliveries",
    )

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes = [
            models.Index(fields=["received_at"], name="delivery_received_at"),
            # "When did this network last call us?" (check_health) and the per-partner list.
            models.Index(fields=["partner", "received_at"], name="delivery_partner_received"),
            # Replay selects invalid/error deliveries by time.
            models.Index(fields=["outcome", "received_at"], name="delivery_outcome_received"),
            # The admin's "stored from the spool" filter, newest first.
            models.Index(fields=["source", "received_at"], name="delivery_source_received"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.partner} {self.outcome}"


class ApiKey(models.Model):
    """A consumer's key to the read-only API (orders.readapi): created in the admin, shown once, revocable.

    Only the key's SHA-256 is stored. A key is 32 random bytes, so nobody can guess it from its hash by
    trying candidates; a slow password hash (PBKDF2, Argon2) exists for low-entropy passwords and would
    only add its cost to every API request. The hash is unique and indexed: a request finds its key by
    one lookup of the hash of what it presented, and a key that is not stored is simply not found.
    """

    consumer = models.CharField(_("consumer"), max_length=100,
                                help_text=_("Who uses this key, e.g. the cashback site's name."))
    # The key's first characters, shown in the admin so that staff can tell which key a consumer holds.
    prefix = models.CharField(_("key starts with"), max_length=16, editable=False)
    key_hash = models.CharField(_("key hash (SHA-256)"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)
    # Written at most once a minute per key (orders.readapi), not on every request.
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self):
        return f"{self.consumer} ({self.prefix}…)"

class OutboundEvent(models.Model):
    """One event for the site (orders.outbox): a change of an order's current status, or a newly flagged money
    conflict, written in the transaction that wrote the ledger, and sent by `manage.py deliver_events`.

    The body is kept as the exact text that is signed and sent, so that every retry and every resend carries
    the very same bytes under the same `public_id` (the `webhook-id` by which the receiver drops repeats).
    """

    class Type(models.TextChoices):
        STATUS_CHANGED = "order.status_changed", _("status changed")
        CONFLICT = "order.conflict", _("money conflict")

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")

    public_id = models.CharField(_("webhook id"), max_length=40, unique=True)
    type = models.CharField(_("event type"), max_length=32, choices=Type.choices)
    # The order's key: one order's events are sent in the order of their ids, each after the one before.
    partner = models.CharField(_("partner"), max_length=32)
    uniq_id = ExactCharField(_("unique id"), max_length=MAX_TEXT_LENGTH)
    # The order event (status row) the event tells about. PROTECT: orders are never deleted.
    order = models.ForeignKey(Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="outbound_events")
    body = models.TextField(_("body"))
    created_at = models.DateTimeField(_("written"), default=timezone.now)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # When the sender may try it next (a retry's delay, or the receiver's Retry-After).
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    last_error = models.TextField(_("last error"), blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("outbound event")
        verbose_name_plural = _("outbound events")
        indexes = [
            # The sender walks the undelivered events in write order (id), and the backlog counts them and
            # dates the oldest; nearly every row is delivered, so this keeps both to the few that are not. The
            # per-order rule needs no index of its own: walking in id order, the sender holds an order back at
            # its first event that cannot go (orders.sender). The admin lists events newest first by id, filtered
            # by state through this index too.
            models.Index(fields=["state", "id"], name="outbound_state_id"),
        ]

    def __str__(self):
        return f"{self.public_id} {self.type}"


class OutboundAttempt(models.Model):
    """One try at sending an event: the receiver's HTTP status, or why there was none."""

    event = models.ForeignKey(OutboundEvent, verbose_name=_("event"), on_delete=models.CASCADE,
                              related_name="attempt_log")
    at = models.DateTimeField(_("time"), default=timezone.now)
    # Null when no answer came: a timeout, a refused connection, a TLS error.
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")

    def __str__(self):
        return f"{self.event_id} {self.status_code or self.error}"

class DailySummary(models.Model):
    """The ledger's orders per day, kept by orders.summary for the overview page: for each day (in
    TIME_ZONE) the orders first received that day, grouped by the partner, currency, status and
    reward-ready flag of their current row, with their count and commission.

    Never incremented: a refresh recomputes whole days from the ledger's current rows, so a replayed,
    duplicated or reordered postback cannot count twice or be lost.
    """

    day = models.DateField(_("day"))
    partner = models.CharField(_("partner"), max_length=32)
    currency = models.CharField(_("currency"), max_length=3)
    order_status = models.CharField(_("current status"), max_length=16, choices=OrderStatus.choices)
    # The network says the money can be paid out (Admitad's reward_ready) on the current row.
    reward_ready = models.BooleanField(_("reward ready"), default=False)
    orders = models.PositiveIntegerField(_("orders"))
    commission = models.DecimalField(
        _("commission"), max_digits=MONEY_INTEGER_DIGITS + 6 + MONEY_DECIMAL_PLACES,
        decimal_places=MONEY_DECIMAL_PLACES,
    )

    class Meta:
        verbose_name = _("daily summary")
        verbose_name_plural = _("daily summaries")
        constraints = [
            # One row per group and day: a refresh replaces a day's rows, it never adds to them.
            models.UniqueConstraint(fields=["day", "partner", "currency", "order_status", "reward_ready"],
                                    name="daily_summary_group"),
        ]

    def __str__(self):
        return f"{self.day} {self.partner} {self.currency} {self.order_status}"


class SummaryState(models.Model):
    """The one row (pk 1) that serialises refreshes of DailySummary and remembers how far they got.

    A refresh locks it (SELECT ... FOR UPDATE, which a Galera cluster certifies too) for its whole
    transaction, so two refreshes never interleave their deletes and inserts of the same day.
    """

    # Orders updated at or after this time, less orders.summary.LATE_COMMIT, are looked at by the next
    # refresh. None: nothing summarised yet, the next refresh summarises every day.
    refreshed_to = models.DateTimeField(_("refreshed up to"), null=True, blank=True)
    # {order pk: updated_at} of the rows stamped within LATE_COMMIT of refreshed_to, as that refresh saw
    # them: the next refresh looks at those rows again (for late commits) but recomputes nothing for them
    # unless they changed, so that every page view does not recompute the last minutes' days again.
    seen = models.JSONField(_("rows seen"), default=dict, blank=True)

    class Meta:
        verbose_name = _("summary state")
        verbose_name_plural = _("summary states")

    def __str__(self):
        return f"summary refreshed to {self.refreshed_to}"
