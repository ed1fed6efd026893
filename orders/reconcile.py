"""Reconciliation: the order events a network's own API lists and the ledger lacks, found and stored.

A postback the network never sent, or sent while a proxy failed, leaves no trace at our door. A run of
`manage.py reconcile` asks the network's API (its client in partners/<network>.py) for every record whose
status changed within a window of dates, and for each one:

1. reads it as its postback would be read (Partner.read_api_record: the network's status words, money
   as Decimal, times in the network's zone); a record that does not read is *malformed*: reported and
   skipped, never stored in part;
2. matches it to the ledger by its id (the network's id of the order event, our uniq_id). Where no order
   has that id, but one has the same (order_number, offer_id), the id mapping is wrong: an *id mismatch*,
   reported, and nothing is stored, so that a wrong mapping can never double the ledger;
3. stores the event (partner, uniq_id, status) where the ledger lacks it, through the one write path
   (orders.ingest.store), as a delivery of source `reconcile` that keeps the record, linked to the run;
   the current-status rule decides as for any postback;
4. flags money that differs from the stored event as a *conflict*, never overwriting it, exactly as a
   postback would (a delivery keeps the network's amounts, once per distinct record);
5. and, once every page is read, reports the orders we hold in a non-final status whose current status
   event we received within the window, but which the network did not return: *unknown to the
   network*. They are never changed.

The window is of dates in the network's time zone, both ends included. Without --since a run starts from
the end of the last successful window, one day back (the networks filter status changes by date, or
coarsely: the overlap is what catches a change made late on the last day), and ends today. A run that
fails part-way keeps what it stored; it does not move the window, so the next run reads it again, and
reading a window again stores nothing twice.

One run per network at a time: an exclusive flock on a file under ALERT_STATE_DIR, the state directory
every process of the service shares (the web container and the cron container share its volume; systemd's
units all write there). The kernel releases it when the process ends, however it ends, so a killed run
never leaves it held. MariaDB's GET_LOCK was not chosen: it is held by one connection, which the service
drops and reopens (CONN_MAX_AGE, a failed query), and on Galera it locks one node only.

A dry run writes nothing to the ledger and records no run; it only keeps the network's API session
(EPN.bz's refresh tokens are good once: one not kept would cost the next run a new login).
"""

import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone

from epnhook.logging import redact
from partners.api import ApiError, Http, RetryPolicy
from partners.base import OrderStatus, ParsedOrder, Partner, PayloadError
from partners.models import DatabaseTokenStore
from partners.registry import get_partner

from . import alerts, filelock
from .ingest import CONFLICT_FIELDS, store
from .models import Delivery, Order, ReconcileRun
from .operations import refresh_connection
from .rawrequest import RawRequest

log = logging.getLogger("epnhook.reconcile")

# How patient a run is with the network's API (partners.api.RetryPolicy); tests give one that does not sleep.
RETRY = RetryPolicy()
# Findings kept one by one in a run's report; beyond this many, they are only counted.
REPORT_LIMIT = 500
# Stored events listed in the alert email.
ALERT_LIMIT = 50
# A run's error text, as kept.
ERROR_LENGTH = 2000
NON_FINAL = (OrderStatus.WAITING, OrderStatus.PENDING)

# What a run finds, and the ReconcileRun count of each.
STORED, CONFLICT, MISMATCH, UNKNOWN, MALFORMED = "stored", "conflict", "mismatch", "unknown", "malformed"
COUNTS = {STORED: "stored", CONFLICT: "conflicts", MISMATCH: "mismatches", UNKNOWN: "unknown",
          MALFORMED: "malformed"}


class ReconcileError(Exception):
    """A run that cannot start: the network has no credentials, another run holds it, a bad window."""


@dataclass
class Finding:
    """One thing a run found, as its report keeps it (JSON) and its output says it (`line`)."""

    kind: str
    uniq_id: str = ""
    status: str = ""
    order: int | None = None
    delivery: int | None = None
    detail: str = ""

    def line(self, *, dry_run: bool) -> str:
        what = f"{self.uniq_id or '(no id)'}{' ' + self.status if self.status else ''}"
        if self.kind == STORED:
            if dry_run:
                return f"would store  {what}: missing from the ledger"
            return f"stored       {what}: order #{self.order}, delivery #{self.delivery}"
        if self.kind == CONFLICT:
            return f"conflict     {what}: {self.detail}"
        if self.kind == MISMATCH:
            return f"id mismatch  {what}: {self.detail}"
        if self.kind == UNKNOWN:
            return f"unknown      {what}: order #{self.order}, {self.detail}"
        return f"malformed    {what}: {self.detail}"


@dataclass
class Summary:
    """What a run did: its record (None for a dry run), the counts, and why it failed (the network's API
    failed; empty when it did not)."""

    partner: str
    since: date
    until: date
    dry_run: bool
    run: ReconcileRun | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(["pages", "fetched", *COUNTS.values()], 0))
    error: str = ""

    def render(self) -> str:
        counts = self.counts
        stored = "would store" if self.dry_run else "stored"
        figures = (f"fetched {counts['fetched']} in {counts['pages']} page(s), "
                   f"{stored} {counts['stored']}, conflicts {counts['conflicts']}, "
                   f"id mismatches {counts['mismatches']}, unknown to the network {counts['unknown']}, "
                   f"malformed {counts['malformed']}")
        window = f"{self.partner} {self.since}..{self.until}"
        if self.dry_run:
            return f"dry run {window}{' failed' if self.error else ''}: {figures} (nothing was written)"
        return f"run #{self.run.pk} {window} {self.run.state}: {figures}"


def configured() -> list[str]:
    """The partners whose API credentials are set, in order."""
    return sorted(settings.RECONCILE_APIS)


def reconcile(slug: str, *, since: date | None = None, until: date | None = None, dry_run: bool = False,
              started_by: str = "", say: Callable[[str], None] = lambda line: None) -> Summary:
    """One run for the network `slug`; see the module docstring. Each finding is passed to `say` as a line
    as it is found. A failure of the network's API ends the run, recorded as failed with what it stored,
    and is the summary's `error`. Raises ReconcileError when the run cannot start, DatabaseError when the
    database fails."""
    partner = get_partner(slug)
    config = settings.RECONCILE_APIS.get(slug)
    if config is None or partner.api_client is None:
        raise ReconcileError(f"{partner.name} has no API credentials configured; see the README, \"Reconciliation\"")
    with exclusive(slug) as held:
        if not held:
            raise ReconcileError(f"another reconcile run for {slug} is in progress; nothing was done")
        since, until = window(partner, since, until)
        client = partner.api_client(**config, store=DatabaseTokenStore(slug), http=Http(RETRY))
        reconciliation = Reconciliation(partner, since, until, dry_run=dry_run, started_by=started_by, say=say)
        reconciliation.execute(client.pages(since, until))
    return reconciliation.summary


def window(partner: Partner, since: date | None, until: date | None) -> tuple[date, date]:
    """The dates a run reads: as given, or from the end of the last successful window (one day back), to today
    in the network's time zone."""
    today = timezone.now().astimezone(ZoneInfo(partner.timezone)).date()
    until = until or today
    if until > today:
        raise ReconcileError(f"--until {until} is after today ({today} in {partner.timezone})")
    if since is None:
        last = last_window_end(partner.slug)
        since = min(last or today, until) - timedelta(days=1)
    if since > until:
        raise ReconcileError(f"--since {since} is after --until {until}")
    return since, until


def last_window_end(slug: str) -> date | None:
    """Where the latest window of a successful run ended (not the run that finished last: an operator may
    have read an old window since)."""
    return (ReconcileRun.objects.filter(partner=slug, state=ReconcileRun.State.SUCCEEDED)
            .order_by("-until").values_list("until", flat=True).first())


@contextmanager
def exclusive(slug: str) -> Iterator[bool]:
    """Hold the network's run lock for the block, across processes; yields False (holding nothing) when
    another process holds it. See the module docstring for why a flock."""
    with filelock.held(settings.ALERT_STATE_DIR / f"reconcile-{slug}.lock") as held:
        yield held


def in_progress(slug: str) -> bool:
    """Whether a run for the network holds its lock now (the admin asks before starting one)."""
    with exclusive(slug) as held:
        return not held


def start_in_background(slug: str, *, started_by: str) -> None:
    """Start `manage.py reconcile --partner <slug>` in a process of its own, with this process's environment,
    and return at once (the admin's button: the request must not wait for a run). The run records itself;
    its output is not kept (its findings are in its record), its errors go to this process's stderr, the
    service's log. A thread reaps it when it ends, so it never lingers as a zombie."""
    process = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "reconcile", "--partner", slug,
         "--started-by", started_by],
        cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    threading.Thread(target=process.wait, name=f"reconcile-{slug}", daemon=True).start()


class Reconciliation:
    """One run over the pages a client yields."""

    def __init__(self, partner: Partner, since: date, until: date, *, dry_run: bool, started_by: str,
                 say: Callable[[str], None]):
        self.partner = partner
        self.since, self.until = since, until
        self.dry_run = dry_run
        self.say = say
        self.summary = Summary(partner.slug, since, until, dry_run)
        self.counts = self.summary.counts
        self.findings: list[dict] = []
        self.omitted = 0
        self.stored: list[Finding] = []  # the first ALERT_LIMIT, for the email
        self.run = None
        if not dry_run:
            close_abandoned(partner.slug)
            self.run = self.summary.run = ReconcileRun.objects.create(
                partner=partner.slug, since=since, until=until, started_by=started_by[:150])

    def execute(self, pages: Iterator[list[dict]]) -> None:
        """Read every page, then report the orders the network did not return; record how it ended. A
        failure of the network's API ends the run, recorded and in the summary's `error`; any other failure
        is recorded and raised."""
        try:
            unconfirmed = self._unconfirmed()
            for records in pages:
                refresh_connection()  # a long run must survive MariaDB's wait_timeout
                self._page(records, unconfirmed)
                self.counts["pages"] += 1
                self._record()
                del records  # memory holds one page: this one goes before the next is read
            for uniq_id, (pk, status) in unconfirmed.items():
                self._find(Finding(UNKNOWN, uniq_id, status, order=pk, detail=(
                    f"{status} in the ledger, not returned by the network for {self.since}..{self.until}")))
        except ApiError as error:
            self.summary.error = redact(str(error))
            self._record(ReconcileRun.State.FAILED, error)
            return
        except BaseException as error:
            self._record(ReconcileRun.State.FAILED, error)
            raise
        self._record(ReconcileRun.State.SUCCEEDED)

    def _unconfirmed(self) -> dict[str, tuple[int, str]]:
        """Our orders whose current status is not final and was received within the window: each should be
        among the records (a status received is a status the network changed), and is crossed off when it is."""
        zone = ZoneInfo(self.partner.timezone)
        start = datetime.combine(self.since, time(), zone)
        end = datetime.combine(self.until + timedelta(days=1), time(), zone)
        rows = Order.objects.filter(
            partner=self.partner.slug, is_current=True, order_status__in=NON_FINAL, created_at__gte=start,
            created_at__lt=end).values_list("uniq_id", "pk", "order_status")
        return {uniq_id: (pk, status) for uniq_id, pk, status in rows}

    def _page(self, records: list[dict], unconfirmed: dict) -> None:
        self.counts["fetched"] += len(records)
        readings: list[tuple[dict, ParsedOrder]] = []
        for number, record in enumerate(records, 1):
            uniq_id = self.partner.api_record_id(record)
            unconfirmed.pop(uniq_id, None)  # the network returned it, readable or not
            try:
                readings.append((record, self.partner.read_api_record(record)))
            except PayloadError as error:
                where = f"record {number} of page {self.counts['pages'] + 1}"
                self._find(Finding(MALFORMED, uniq_id, detail=f"{where}: {error.message}; skipped"))
        ids = {parsed.uniq_id for _record, parsed in readings}
        events = {(order.uniq_id, order.order_status): order for order in Order.objects.filter(
            partner=self.partner.slug, uniq_id__in=ids).only("pk", "uniq_id", "order_status", *CONFLICT_FIELDS)}
        known = {uniq_id for uniq_id, _status in events}
        twins = self._by_order_number({parsed.order_number for _record, parsed in readings
                                       if parsed.uniq_id not in known and parsed.order_number})
        for record, parsed in readings:
            self._reconcile(record, parsed, events, known, twins)

    def _by_order_number(self, numbers: set[str]) -> dict[tuple[str, str], Order]:
        """Orders of these shop order numbers, by (order_number, offer_id): the fallback match."""
        if not numbers:
            return {}
        rows = Order.objects.filter(partner=self.partner.slug, order_number__in=numbers).only(
            "pk", "uniq_id", "order_number", "offer_id")
        return {(order.order_number, order.offer_id): order for order in rows}

    def _reconcile(self, record: dict, parsed: ParsedOrder, events: dict, known: set, twins: dict) -> None:
        key = (parsed.uniq_id, parsed.order_status)
        stored = events.get(key)
        if stored is not None:
            if differing := [name for name in CONFLICT_FIELDS if getattr(stored, name) != getattr(parsed, name)]:
                self._conflict(record, parsed, stored, differing)
            return
        twin = twins.get((parsed.order_number, parsed.offer_id)) if parsed.uniq_id not in known else None
        if twin is not None:
            self._find(Finding(MISMATCH, parsed.uniq_id, parsed.order_status, order=twin.pk, detail=(
                f"no order has this id, but order #{twin.pk} ({twin.uniq_id}) has order_number "
                f"{parsed.order_number} and offer_id {parsed.offer_id or '(none)'}: is the API's id the postback's "
                f"uniq_id? Nothing stored")))
            return
        # The same event twice in one page is then stored once.
        known.add(parsed.uniq_id)
        if self.dry_run:
            events[key] = Order(**{name: getattr(parsed, name) for name in CONFLICT_FIELDS})
            self._find(Finding(STORED, parsed.uniq_id, parsed.order_status))
            return
        result = store(RawRequest.of_api_record(self.partner.slug, record), reconcile_run=self.run)
        events[key] = Order(pk=result.order_id, **{name: getattr(parsed, name) for name in CONFLICT_FIELDS})
        if result.outcome == Delivery.Outcome.CREATED:
            self._find(Finding(STORED, parsed.uniq_id, parsed.order_status, result.order_id, result.delivery_id))
        elif result.conflict_fields:  # a postback of the same event arrived meanwhile, with other money
            self._find(Finding(CONFLICT, parsed.uniq_id, parsed.order_status, result.order_id, result.delivery_id,
                               f"{', '.join(result.conflict_fields)} differ from order #{result.order_id}"))

    def _conflict(self, record: dict, parsed: ParsedOrder, order: Order, differing: list[str]) -> None:
        """Money the network states otherwise than the stored event: flagged, never overwritten. The record
        is kept as a delivery (the only account of the other amounts) unless one of the order keeps it already."""
        detail = "; ".join(f"{name} {_text(getattr(order, name))} in the ledger, {_text(getattr(parsed, name))} at "
                           f"the network" for name in differing)
        finding = Finding(CONFLICT, parsed.uniq_id, parsed.order_status, order.pk, detail=detail)
        if not self.dry_run:
            raw = RawRequest.of_api_record(self.partner.slug, record)
            kept = Delivery.objects.filter(order_id=order.pk, source=Delivery.Source.RECONCILE).values_list(
                "body", flat=True)
            if all(bytes(body) != raw.body for body in kept):
                finding.delivery = store(raw, reconcile_run=self.run).delivery_id
            finding.detail += f"; order #{order.pk} is flagged"
        self._find(finding)

    def _find(self, finding: Finding) -> None:
        self.counts[COUNTS[finding.kind]] += 1
        if len(self.findings) < REPORT_LIMIT:
            self.findings.append(asdict(finding))
        else:
            self.omitted += 1
        if finding.kind == STORED and len(self.stored) < ALERT_LIMIT:
            self.stored.append(finding)
        self.say(finding.line(dry_run=self.dry_run))

    def _record(self, state: str | None = None, error: BaseException | None = None) -> None:
        """Write the run's counts and report (after each page), and how it ended; mail the admins about the
        events it stored. A database that fails here is logged: the run's own error matters more."""
        if self.run is None:
            return
        values = {**{name: self.counts[name] for name in ("pages", "fetched", *COUNTS.values())},
                  "report": {"findings": self.findings, "omitted": self.omitted}}
        if state is not None:
            values.update(state=state, finished_at=timezone.now())
            if error is not None:
                values["error"] = redact(_describe(error))[:ERROR_LENGTH]
        try:
            ReconcileRun.objects.filter(pk=self.run.pk).update(**values)
        except DatabaseError:
            if state is None:
                raise
            log.exception("could not record how reconcile run #%s ended", self.run.pk)
        for name, value in values.items():
            setattr(self.run, name, value)
        if state is not None and self.counts["stored"]:
            self._alert()

    def _alert(self) -> None:
        partner, run, count = self.partner, self.run, self.counts["stored"]
        lines = [f"  {finding.uniq_id} {finding.status}: order #{finding.order}" for finding in self.stored]
        if count > len(lines):
            lines.append(f"  ... and {count - len(lines)} more (see the run in the admin)")
        link = (f"\n\nThe run: https://{settings.DOMAIN}{reverse('admin:orders_reconcilerun_change', args=[run.pk])}"
                if settings.DOMAIN else "")
        alerts.alert(
            f"reconcile-stored-{partner.slug}",
            f"Reconciliation stored {count} missing order event(s) of {partner.name}",
            f"Reconcile run #{run.pk} read {partner.name}'s API for the status changes of {self.since} to "
            f"{self.until}, and found {count} order event(s) that no postback had brought. They are stored "
            f"now:\n\n" + "\n".join(lines) + "\n\nThese are postbacks that never arrived: check the postback "
            "URL in the network's dashboard, its log of postbacks sent, and our delivery log for the time."
            + link,
            background=False,
        )


def close_abandoned(slug: str) -> None:
    """Mark as failed the runs of the network still `running`: called with the network's lock held, so no
    process runs them any more (it was killed, or lost the database before it could say how it ended)."""
    ReconcileRun.objects.filter(partner=slug, state=ReconcileRun.State.RUNNING).update(
        state=ReconcileRun.State.FAILED, finished_at=timezone.now(),
        error="the run ended without recording how (its process was killed, or lost the database)")


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return str(error) if isinstance(error, ApiError) else f"{type(error).__name__}: {error}"


def _text(value) -> str:
    if value is None:
        return "-"
    return format(value, "f") if isinstance(value, Decimal) else str(value)
