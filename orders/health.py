"""The checks behind `manage.py check_health`, run from cron every minute.

Each check returns a Check with a Nagios level (0 ok, 1 warning, 2 critical); the report's level is
the worst of them and is the command's exit code. No check raises: a check that fails unexpectedly
is itself reported as critical, so cron always gets a report and an exit code.

Running twice at once is safe: the only write is draining the spool, and spooldrain.drain() takes an
exclusive lock (a second run reports the spool as busy instead of draining it); the alert throttle
is file-locked; the disk probe uses a unique temporary name; everything else only reads.
"""

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core import checks as system_checks
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from partners.models import NetworkToken

from . import alerts, dberrors, outbox, spool, spooldrain, summary
from .models import Delivery, Order, OutboundEvent, ReconcileRun
from .operations import discard_connection, refresh_connection

log = logging.getLogger("epnhook.health")

OK, WARNING, CRITICAL = 0, 1, 2
LEVELS = {OK: "ok", WARNING: "warning", CRITICAL: "critical"}
SKIPPED = "skipped"
# An undelivered event older than this means the site has not taken events for a while: the retry schedule's
# first four attempts (immediately, 5 s, 5 min, 30 min) are behind it.
OUTBOX_BACKLOG_WARNING = timedelta(minutes=40)

# The invalid deliveries check counts this far back.
INVALID_WINDOW_HOURS = 24

# Mail backends that never deliver a message to anybody.
UNDELIVERED_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend": "prints alerts to the console",
    "django.core.mail.backends.filebased.EmailBackend": "writes alerts to files",
    "django.core.mail.backends.locmem.EmailBackend": "keeps alerts in memory",
    "django.core.mail.backends.dummy.EmailBackend": "discards alerts",
}


@dataclass
class Check:
    name: str
    level: int
    message: str
    data: dict = field(default_factory=dict)
    skipped: bool = False

    @property
    def status(self) -> str:
        return SKIPPED if self.skipped else LEVELS[self.level]


@dataclass
class HealthReport:
    checks: list[Check]

    @property
    def level(self) -> int:
        return max((check.level for check in self.checks), default=OK)

    @property
    def status(self) -> str:
        return LEVELS[self.level]

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if check.level != OK]

    def as_json(self, *, only_problems: bool = False) -> dict:
        checks = self.problems if only_problems else self.checks
        return {
            "status": self.status,
            "exit_code": self.level,
            "checks": [{**asdict(check), "status": check.status} for check in checks],
        }

    def render(self, *, only_problems: bool = False) -> str:
        """Plain text, one line per check; with only_problems, empty when everything is fine."""
        checks = self.problems if only_problems else self.checks
        if not checks:
            return ""
        lines = [f"epnhook health: {self.status.upper()}"]
        lines += [f"{check.status.upper():<9} {check.name:<20} {check.message}" for check in checks]
        return "\n".join(lines)


def run_checks(*, now: datetime | None = None) -> HealthReport:
    """Run every check; drain the spool when the database answers. Never raises."""
    refresh_connection()
    database = _guarded("database", check_database)
    database_up = database.level != CRITICAL
    checks = [_guarded("configuration", check_configuration), database]
    checks.append(_guarded("migrations", check_migrations) if database_up else _skipped("migrations"))
    checks.append(_guarded("spool", lambda: check_spool(drain=database_up)))
    checks.append(_guarded("spool disk", check_spool_disk))
    if database_up:
        checks += _guarded_many("last postback", lambda: check_last_postbacks(now or timezone.now()))
        checks += _guarded_many("last reconcile", lambda: check_last_reconciles(now or timezone.now()))
        checks.append(_guarded("outbound events", lambda: check_outbox(now or timezone.now())))
        checks.append(_guarded("invalid deliveries", lambda: check_invalid_deliveries(now or timezone.now())))
        checks.append(_guarded("conflicts", check_conflicts))
        migrated = checks[2].level == OK
        checks.append(_guarded("summary", check_summary) if migrated else _skipped("summary"))
    else:
        checks.append(_skipped("last postback"))
        checks.append(_skipped("outbound events"))
        if settings.RECONCILE_APIS:
            checks.append(_skipped("last reconcile"))
        checks += [_skipped("invalid deliveries"), _skipped("conflicts"), _skipped("summary")]
    checks.append(_guarded("mail", check_mail))
    return HealthReport(checks)


def check_configuration() -> Check:
    """Django's system checks (tokens, settings), which the command does not run on its own so
    that a warning does not turn every cron run into mail; here they count like any other check."""
    messages = [m for m in system_checks.run_checks(include_deployment_checks=False) if not m.is_silenced()]
    errors = [m for m in messages if m.level >= system_checks.ERROR]
    warnings = [m for m in messages if system_checks.WARNING <= m.level < system_checks.ERROR]
    data = {"messages": [f"{m.id}: {m.msg}" for m in errors + warnings]}
    if not errors and not warnings:
        return Check("configuration", OK, "system checks pass", data)
    level = CRITICAL if errors else WARNING
    return Check("configuration", level, " ".join(f"{m.id}: {m.msg}" for m in errors + warnings), data)


def check_database() -> Check:
    started = time.monotonic()
    connection.ensure_connection()
    connected = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    query_ms = round((time.monotonic() - connected) * 1000, 1)
    total_ms = round((time.monotonic() - started) * 1000, 1)
    data = {"ms": total_ms, "query_ms": query_ms, "vendor": connection.vendor}
    message = f"answered in {total_ms} ms (query {query_ms} ms)"
    if total_ms >= settings.HEALTH_DATABASE_SLOW_MS:
        return Check("database", WARNING, f"slow: {message}; limit {settings.HEALTH_DATABASE_SLOW_MS} ms", data)
    return Check("database", OK, message, data)


def check_migrations() -> Check:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    unapplied = [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]
    if unapplied:
        shown = ", ".join(unapplied[:3]) + (f" and {len(unapplied) - 3} more" if len(unapplied) > 3 else "")
        return Check(
            "migrations", CRITICAL, f"{len(unapplied)} not applied ({shown}); run manage.py migrate",
            {"unapplied": unapplied},
        )
    return Check("migrations", OK, "all applied")


def check_spool(*, drain: bool) -> Check:
    """The spool should be empty: drain it when the database is up, and count what is left."""
    backlog = spool.backlog()
    quarantined = spool.quarantined_count()
    data = {"backlog": backlog, "quarantined": quarantined}
    if backlog and not drain:
        return Check("spool", CRITICAL, f"{backlog} postback(s) waiting; the database does not answer", data)
    level, message = OK, "empty"
    if backlog:
        report = spooldrain.drain()
        quarantined += report.quarantined
        data.update(stored=report.stored, already_stored=report.already_stored, remaining=report.remaining,
                    busy=report.busy, quarantined=quarantined)
        if report.busy:
            level, message = WARNING, f"{backlog} postback(s) waiting; another process is draining the spool"
        elif report.error:
            data["error"] = report.error
            level, message = CRITICAL, (f"drained {report.stored}, then the database failed "
                                        f"({report.error}); {report.remaining} remain")
        else:
            message = f"drained {report.stored + report.already_stored}; {report.remaining} remain"
    if quarantined and level == OK:
        level, message = WARNING, f"{message}; {_quarantine_message(quarantined)}"
    return Check("spool", level, message, data)


def check_spool_backlog() -> Check:
    """What the spool holds now, without draining it (the overview page; check_spool drains every minute).

    Warns exactly when check_spool would with the database up: for quarantined entries.
    """
    backlog, quarantined = spool.backlog(), spool.quarantined_count()
    data = {"backlog": backlog, "quarantined": quarantined}
    message = f"{backlog} postback(s) waiting" if backlog else "empty"
    if quarantined:
        return Check("spool", WARNING, f"{message}; {_quarantine_message(quarantined)}", data)
    return Check("spool", OK, message, data)


def _quarantine_message(quarantined: int) -> str:
    return f"{quarantined} unreadable entr{'y' if quarantined == 1 else 'ies'} in {spool.quarantine_dir()} need a look"


def check_spool_disk() -> Check:
    """The spool must be writable, with room, for the day the database is down."""
    directory = spool.incoming_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".health-", suffix=".probe") as probe:
            probe.write(b"probe")
            probe.flush()
        free_mb = shutil.disk_usage(directory).free // 2**20
    except OSError as error:
        return Check("spool disk", CRITICAL, f"cannot write to the spool {directory}: {error}")
    data = {"free_mb": free_mb, "path": str(directory)}
    message = f"{free_mb} MiB free"
    if free_mb < settings.SPOOL_FREE_CRITICAL_MB:
        return Check("spool disk", CRITICAL, f"{message}, under {settings.SPOOL_FREE_CRITICAL_MB} MiB", data)
    if free_mb < settings.SPOOL_FREE_WARNING_MB:
        return Check("spool disk", WARNING, f"{message}, under {settings.SPOOL_FREE_WARNING_MB} MiB", data)
    return Check("spool disk", OK, message, data)


def check_last_postbacks(now: datetime) -> list[Check]:
    """One check per partner with a token, in the environment or live in the admin: a network that stopped
    calling may have disabled our URL.

    Deliveries entered by hand do not count: they say nothing about the network calling us.
    """
    issued = NetworkToken.objects.filter(revoked_at=None).values_list("network__slug", flat=True).distinct()
    partners = sorted({partner for partner, _ in settings.WEBHOOK_TOKENS}.union(issued))
    return [_last_postback(partner, now) for partner in partners]  # no token at all: see "configuration"


def _last_postback(partner: str, now: datetime) -> Check:
    name = f"last postback {partner}"
    hours = stale_after_hours(partner)
    last = (
        Delivery.objects.filter(partner=partner).exclude(source=Delivery.Source.MANUAL)
        .order_by("-received_at").values_list("received_at", flat=True).first()
    )
    data = {"partner": partner, "stale_after_hours": hours, "last": last.isoformat() if last else None}
    if hours == 0:
        return Check(name, OK, "check off (STALE_AFTER_HOURS 0)", data)
    if last is None:
        return Check(name, WARNING, "none received yet; is the URL set up in the network's dashboard?", data)
    age_hours = (now - last) / timedelta(hours=1)
    data["age_hours"] = round(age_hours, 2)
    message = f"{age_hours:.1f} h ago ({timezone.localtime(last):%Y-%m-%d %H:%M %Z})"
    if age_hours > hours:
        return Check(name, WARNING, f"{message}, over {hours:g} h: has the network disabled our URL?", data)
    return Check(name, OK, message, data)


def stale_after_hours(partner: str) -> float:
    return settings.STALE_AFTER_HOURS_BY_PARTNER.get(partner, settings.STALE_AFTER_HOURS)


def check_last_reconciles(now: datetime) -> list[Check]:
    """One check per network with API credentials: its orders are checked against its own records only as
    long as reconciliation runs and succeeds (cron starts it every two hours)."""
    return [_last_reconcile(partner, now) for partner in sorted(settings.RECONCILE_APIS)]


def _last_reconcile(partner: str, now: datetime) -> Check:
    name = f"last reconcile {partner}"
    hours = settings.RECONCILE_STALE_HOURS
    runs = ReconcileRun.objects.filter(partner=partner)
    last = (runs.filter(state=ReconcileRun.State.SUCCEEDED).order_by("-finished_at")
            .values_list("finished_at", flat=True).first())
    failed = (runs.filter(state=ReconcileRun.State.FAILED, finished_at__gt=last or datetime.min.replace(tzinfo=UTC))
              .order_by("-finished_at").values_list("pk", "error").first())
    data = {"partner": partner, "stale_after_hours": hours, "last": last.isoformat() if last else None,
            "failed_since": failed[0] if failed else None}
    if hours == 0:
        return Check(name, OK, "check off (RECONCILE_STALE_HOURS 0)", data)
    # The latest failure says why, in a line (the run's page has the whole text).
    why = f"; run #{failed[0]} failed: {failed[1].splitlines()[0][:200] if failed[1] else '?'}" if failed else ""
    if last is None:
        return Check(name, WARNING, f"no successful run yet; try manage.py reconcile --partner {partner} "
                                    f"--dry-run{why}", data)
    age_hours = (now - last) / timedelta(hours=1)
    data["age_hours"] = round(age_hours, 2)
    message = f"succeeded {age_hours:.1f} h ago ({timezone.localtime(last):%Y-%m-%d %H:%M %Z})"
    if age_hours > hours:
        return Check(name, WARNING, f"{message}, over {hours:g} h{why}", data)
    return Check(name, OK, message, data)


def failed_events():
    """Events that failed after every retry: each holds back its order's later events until resent."""
    return OutboundEvent.objects.filter(state=OutboundEvent.State.FAILED)


def check_outbox(now: datetime) -> Check:
    """Events the site has not taken: a failed one (it holds its order's later events back until resent),
    or an old backlog (the site, or deliver_events, has been down)."""
    backlog = outbox.backlog()
    failed = failed_events().count() if backlog.count else 0
    data = {"backlog": backlog.count, "failed": failed, "enabled": bool(settings.OUTBOUND_URL),
            "oldest": backlog.oldest.isoformat() if backlog.oldest else None}
    if not backlog.count:
        return Check("outbound events", OK, "all delivered" if settings.OUTBOUND_URL else "off (OUTBOUND_URL unset)",
                     data)
    message = (f"{backlog.count} undelivered, the oldest written "
               f"{timezone.localtime(backlog.oldest):%Y-%m-%d %H:%M %Z}")
    if failed:
        return Check("outbound events", WARNING, f"{failed} failed after every retry; resend them in the admin "
                                                 f"once the site answers ({message})", data)
    if not settings.OUTBOUND_URL:
        return Check("outbound events", WARNING, f"{message}, and OUTBOUND_URL is unset: nothing sends them", data)
    if now - backlog.oldest > OUTBOX_BACKLOG_WARNING:
        return Check("outbound events", WARNING, f"{message}: is deliver_events running, does the site answer?",
                     data)
    return Check("outbound events", OK, message, data)


def invalid_deliveries_since(now: datetime) -> datetime:
    """Where the invalid deliveries check's window starts."""
    return now - timedelta(hours=INVALID_WINDOW_HOURS)


def check_invalid_deliveries(now: datetime) -> Check:
    """Requests refused as invalid in the last 24 hours: a network that changed its format, or a parser
    that needs a fix (then replay them). Served by the (outcome, received_at) index."""
    limit = settings.HEALTH_INVALID_DELIVERIES
    count = Delivery.objects.filter(outcome=Delivery.Outcome.INVALID,
                                    received_at__gte=invalid_deliveries_since(now)).count()
    data = {"count": count, "limit": limit}
    message = f"{count} in the last {INVALID_WINDOW_HOURS} h"
    if limit and count >= limit:
        return Check("invalid deliveries", WARNING, f"{message}, {limit} or more: see the deliveries list", data)
    return Check("invalid deliveries", OK, message if limit else f"{message}; check off (HEALTH_INVALID_DELIVERIES 0)",
                 data)


def unreviewed_conflicts():
    """Status events flagged as a money conflict that nobody has marked as looked at yet."""
    return Order.objects.filter(has_conflict=True, conflict_reviewed_at=None)


def check_conflicts() -> Check:
    """Money conflicts (a resent postback with other amounts) that staff have not looked at. Served by the
    (has_conflict, created_at) index: conflicts are few."""
    limit = settings.HEALTH_CONFLICTS
    count = unreviewed_conflicts().count()
    data = {"count": count, "limit": limit}
    message = f"{count} not looked at"
    if limit and count >= limit:
        return Check("conflicts", WARNING, f"{message}; mark them as looked at in the order list", data)
    return Check("conflicts", OK, message if limit else f"{message}; check off (HEALTH_CONFLICTS 0)", data)


def check_summary() -> Check:
    """Bring the overview's daily summary up to date (orders.summary), so that it never lags far behind
    even when nobody opens the overview."""
    report = summary.refresh(wait=False)
    if report.busy:
        return Check("summary", OK, "another refresh is running", {"days": 0, "busy": True})
    return Check("summary", OK, f"{report.days} day(s) recomputed", {"days": report.days})


def check_mail() -> Check:
    """Whether alerts can reach anybody; configuration only (no login to the mail server every minute)."""
    problems = []
    if not settings.ADMINS:
        problems.append("ADMINS is empty, so alerts go to nobody")
    backend = settings.EMAIL_BACKEND
    if backend in UNDELIVERED_BACKENDS:
        problems.append(f"EMAIL_URL {UNDELIVERED_BACKENDS[backend]}; nobody receives them")
    elif backend == "django.core.mail.backends.smtp.EmailBackend" and not settings.EMAIL_HOST:
        problems.append("EMAIL_URL names no SMTP host")
    elif backend.startswith("anymail.") and not settings.ANYMAIL.get(settings.ANYMAIL_CREDENTIAL):
        problems.append("ANYMAIL_API_KEY is empty")
    data = {"backend": backend.rsplit(".", 2)[-2], "admins": len(settings.ADMINS)}
    if problems:
        return Check("mail", WARNING, "; ".join(problems), data)
    return Check("mail", OK, f"{len(settings.ADMINS)} admin(s) via {data['backend']}", data)


def notify(report: HealthReport) -> bool:
    """Email the admins about the report's problems; returns whether an email was sent.

    Throttled per set of problems: the same problems mail once per ALERT_THROTTLE_SECONDS, while a
    new or worse problem mails at once. Sent synchronously: a command must not exit before it goes.
    """
    problems = report.problems
    if not problems:
        return False
    signature = ",".join(sorted(f"{check.name}={check.level}" for check in problems))
    kind = "health-" + hashlib.sha256(signature.encode()).hexdigest()[:16]
    subject = f"Health {report.status.upper()}: {', '.join(check.name for check in problems)}"
    message = (
        f"{report.render()}\n\n"
        "manage.py check_health found the problems above. The runbooks are in docs/OPERATIONS.md."
    )
    return alerts.alert(kind, subject, message, background=False)


def _guarded(name: str, run: Callable[[], Check]) -> Check:
    return _guarded_many(name, lambda: [run()])[0]


def _guarded_many(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """Run a check; turn a failure into a critical result instead of an exception."""
    try:
        return run()
    except DatabaseError as error:
        discard_connection()
        return [Check(name, CRITICAL, f"database error: {dberrors.describe(error)}")]
    except Exception as error:
        log.exception("health check %s failed", name)
        return [Check(name, CRITICAL, f"the check itself failed: {type(error).__name__}: {error}")]


def _skipped(name: str) -> Check:
    return Check(name, OK, "not checked: the database does not answer", skipped=True)
