"""The overview page's figures: what the site earned, what is still on hold, and whether anything is wrong.

The money comes from the daily summary (orders.summary), refreshed first, so the page reads a few
thousand summary rows instead of a million orders. The "is anything wrong" part reuses the checks of
orders.health: a figure is red exactly when check_health warns about it, with the same thresholds.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.db.models import Count, Sum
from django.db.models.functions import TruncHour
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from partners.base import OrderStatus
from partners.registry import partner_choices

from . import health, summary
from .models import DailySummary, Delivery, OutboundEvent, ReconcileRun

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
STATUSES = (OrderStatus.WAITING, OrderStatus.PENDING, OrderStatus.COMPLETED, OrderStatus.REJECTED)
# The Okabe-Ito palette, which readers with any common colour vision deficiency tell apart; the page
# names each colour in a legend and in every bar's tooltip as well.
STATUS_COLOURS = {
    OrderStatus.WAITING: "#56B4E9",  # sky blue
    OrderStatus.PENDING: "#E69F00",  # orange
    OrderStatus.COMPLETED: "#009E73",  # bluish green
    OrderStatus.REJECTED: "#D55E00",  # vermillion
}
# The pipeline's columns, in the words of the business.
PIPELINE_LABELS = {
    "waiting": _("waiting"),
    "pending": _("on hold"),
    "completed": _("confirmed"),
    "ready": _("ready to pay out"),
    "rejected": _("rejected"),
}
# The network whose postbacks say when the money is ready to pay out (its reward_ready extra).
REWARD_READY_PARTNERS = ("admitad",)
# The chart's drawing area, in SVG units (it scales to the page's width).
CHART_WIDTH, CHART_HEIGHT = 440, 150
HOURS = 24
# The most days a page view recomputes before rendering (each is a query of some tens of ms at a
# million orders); more are left to check_health's next run.
PAGE_REFRESH_DAYS = 4
SPARK_HEIGHT = 30


@dataclass
class Segment:
    status: str
    label: str
    colour: str
    orders: int
    commission: Decimal
    y: float = 0
    height: float = 0


@dataclass
class Day:
    day: date
    segments: list[Segment]
    x: float = 0
    width: float = 0

    @property
    def commission(self) -> Decimal:
        return sum((segment.commission for segment in self.segments), Decimal(0))

    @property
    def orders(self) -> int:
        return sum(segment.orders for segment in self.segments)


@dataclass
class Chart:
    """Commission per day of one network in one currency, stacked by the orders' current status."""

    partner: str
    partner_name: str
    currency: str
    days: list[Day]
    maximum: Decimal = Decimal(0)
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


@dataclass
class Figure:
    """One amount of the pipeline, with the order list that holds exactly those orders."""

    key: str
    label: str
    orders: int
    commission: Decimal
    url: str


@dataclass
class Pipeline:
    partner: str
    partner_name: str
    currency: str
    figures: list[Figure]


@dataclass
class Postbacks:
    partner: str
    partner_name: str
    check: health.Check
    last: datetime | None
    hours: list[tuple[datetime, int, int, float, float]]  # hour start, postbacks, x, y, height
    total: int


@dataclass
class Reconcile:
    partner: str
    partner_name: str
    check: health.Check
    run: ReconcileRun | None


@dataclass
class Overview:
    period: int
    first_day: date
    last_day: date
    summary_behind: bool  # the summary was not brought up to date for this view
    charts: list[Chart]
    pipelines: list[Pipeline]
    postbacks: list[Postbacks]
    spool: health.Check
    outbound: health.Check
    outbound_oldest: datetime | None  # the oldest undelivered event's time
    outbound_url: str
    invalid: health.Check
    invalid_url: str
    conflicts: health.Check
    conflicts_url: str
    reconciles: list[Reconcile]
    statuses: list[tuple[str, str, str]] = field(default_factory=list)  # value, label, colour


def build(period: int = DEFAULT_PERIOD, *, now: datetime | None = None) -> Overview:
    """Everything the page shows, for the last `period` days up to today (in TIME_ZONE)."""
    now = now or timezone.now()
    # Neither waiting for a refresh that is already running (check_health's, a --all) nor recomputing
    # more than a few days (after a burst of changes; check_health does it within the minute): then the
    # page shows the summary as the last refresh left it, and says so.
    refreshed = summary.refresh(now=now, wait=False, max_days=PAGE_REFRESH_DAYS)
    names = dict(partner_choices())
    last_day = summary.local_day(now)
    first_day = last_day - timedelta(days=period - 1)
    return Overview(
        period=period, first_day=first_day, last_day=last_day,
        summary_behind=refreshed.busy or bool(refreshed.deferred),
        charts=charts(first_day, last_day, names),
        pipelines=pipelines(names),
        postbacks=postbacks(now, names),
        spool=health.check_spool_backlog(),
        outbound=(outbound := health.check_outbox(now)),
        outbound_oldest=datetime.fromisoformat(outbound.data["oldest"]) if outbound.data["oldest"] else None,
        outbound_url=reverse("admin:orders_outboundevent_changelist") + "?" + urlencode(
            {"state__exact": OutboundEvent.State.FAILED if health.failed_events() else OutboundEvent.State.PENDING}),
        invalid=health.check_invalid_deliveries(now),
        invalid_url=reverse("admin:orders_delivery_changelist") + "?" + urlencode(
            {"outcome__exact": Delivery.Outcome.INVALID, "last_hours": health.INVALID_WINDOW_HOURS}),
        conflicts=health.check_conflicts(),
        conflicts_url=reverse("admin:orders_order_changelist") + "?" + urlencode(
            {"rows": "events", "conflict_review": "pending"}),
        reconciles=reconciles(now, names),
        statuses=[(status.value, status.label, STATUS_COLOURS[status]) for status in STATUSES],
    )


def charts(first_day: date, last_day: date, names: dict[str, str]) -> list[Chart]:
    """One chart per network and currency that has orders in the period, every day of it a bar."""
    rows = (DailySummary.objects.filter(day__gte=first_day, day__lte=last_day)
            .values("partner", "currency", "day", "order_status")
            .annotate(orders=Sum("orders"), commission=Sum("commission")))
    cells = defaultdict(dict)
    for row in rows:
        cells[(row["partner"], row["currency"])][(row["day"], row["order_status"])] = row
    days = [first_day + timedelta(days=offset) for offset in range((last_day - first_day).days + 1)]
    result = []
    for (partner, currency), found in sorted(cells.items()):
        chart = Chart(partner, names.get(partner, partner), currency, [
            Day(day, [Segment(status, status.label, STATUS_COLOURS[status],
                              found.get((day, status), {}).get("orders", 0),
                              found.get((day, status), {}).get("commission") or Decimal(0))
                      for status in STATUSES])
            for day in days
        ])
        _lay_out(chart)
        result.append(chart)
    return result


def _lay_out(chart: Chart) -> None:
    """Place the bars: one slot per day, segments stacked from the bottom in STATUSES order."""
    chart.maximum = max((day.commission for day in chart.days), default=Decimal(0))
    slot = chart.width / len(chart.days)
    for index, day in enumerate(chart.days):
        day.x, day.width = round(index * slot + slot * 0.1, 2), round(slot * 0.8, 2)
        bottom = float(chart.height)
        for segment in day.segments:
            segment.height = round(float(segment.commission / chart.maximum) * chart.height, 2) if chart.maximum else 0
            bottom -= segment.height
            segment.y = round(bottom, 2)


def pipeline_url(partner: str, currency: str, status: str, *, reward_ready: bool = False) -> str:
    """The order list (orders at their current status) holding exactly one figure's orders."""
    query = {"partner": partner, "currency__exact": currency, "order_status__exact": status}
    if reward_ready:
        query["reward_ready"] = "yes"
    return reverse("admin:orders_order_changelist") + "?" + urlencode(query)


def pipelines(names: dict[str, str]) -> list[Pipeline]:
    """The money now, per network and currency: every order ever received, at its current status."""
    rows = (DailySummary.objects.values("partner", "currency", "order_status", "reward_ready")
            .annotate(orders=Sum("orders"), commission=Sum("commission")))
    groups = defaultdict(lambda: defaultdict(lambda: [0, Decimal(0)]))
    for row in rows:
        group = groups[(row["partner"], row["currency"])]
        keys = [row["order_status"]]
        if row["reward_ready"] and row["order_status"] == OrderStatus.COMPLETED:
            keys.append("ready")
        for key in keys:
            group[key][0] += row["orders"]
            group[key][1] += row["commission"]
    result = []
    for (partner, currency), group in sorted(groups.items()):
        keys = ["waiting", "pending", "completed", *(["ready"] if partner in REWARD_READY_PARTNERS else []),
                "rejected"]
        figures = [
            Figure(key, PIPELINE_LABELS[key], group[key][0], group[key][1],
                   pipeline_url(partner, currency, "completed" if key == "ready" else key, reward_ready=key == "ready"))
            for key in keys
        ]
        result.append(Pipeline(partner, names.get(partner, partner), currency, figures))
    return result


def postbacks(now: datetime, names: dict[str, str]) -> list[Postbacks]:
    """Per network with a token: its last postback (red as check_health's last postback check) and its
    postbacks per hour over the last 24 hours, counted as that check counts them (not those entered by
    hand). Hours in UTC: MariaDB then groups without CONVERT_TZ and its time zone tables."""
    first_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    counts = defaultdict(dict)
    rows = (Delivery.objects.filter(received_at__gte=first_hour).exclude(source=Delivery.Source.MANUAL)
            .annotate(hour=TruncHour("received_at", tzinfo=UTC)).values("partner", "hour")
            .annotate(count=Count("pk")).order_by())
    for row in rows:
        counts[row["partner"]][row["hour"]] = row["count"]
    hours = [first_hour + timedelta(hours=offset) for offset in range(HOURS)]
    result = []
    for check in health.check_last_postbacks(now):
        partner = check.data["partner"]
        found = counts.get(partner, {})
        peak = max(found.values(), default=0)
        last = check.data["last"]
        result.append(Postbacks(
            partner, names.get(partner, partner), check, datetime.fromisoformat(last) if last else None,
            [_spark_bar(index, hour, found.get(hour, 0), peak) for index, hour in enumerate(hours)],
            sum(found.values()),
        ))
    return result


def _spark_bar(index: int, hour: datetime, count: int, peak: int) -> tuple[datetime, int, int, float, float]:
    """One hour of the sparkline: SPARK_HEIGHT for the busiest hour, a 1-unit line for a silent one."""
    height = max(round(count / peak * SPARK_HEIGHT, 2), 1) if peak and count else 1
    return hour, count, index * 8, SPARK_HEIGHT - height, height


def reconciles(now: datetime, names: dict[str, str]) -> list[Reconcile]:
    """Per network with API credentials: its last run and what it found, red as check_health's check."""
    result = []
    for check in health.check_last_reconciles(now):
        partner = check.data["partner"]
        run = ReconcileRun.objects.filter(partner=partner).order_by("-started_at", "-pk").first()
        result.append(Reconcile(partner, names.get(partner, partner), check, run))
    return result


def period_from(value: str | None) -> int:
    """The period a query parameter asks for; the default for anything else."""
    return int(value) if value in {str(period) for period in PERIODS} else DEFAULT_PERIOD
