"""The staff admin: orders (the ledger) and deliveries (the raw log), fast at millions of rows.

Four things the stock admin does that a million-row InnoDB table cannot afford, and what replaces them:
- COUNT(*) for the paginator: InnoDB has no stored row count, so it reads an index end to end.
  BoundedCountPaginator counts at most COUNT_LIMIT rows and says "more than" beyond.
- icontains search (LIKE '%x%'): no index can serve it. Search is by prefix on indexed columns.
- the date hierarchy's SELECT DISTINCT over the whole table (and MariaDB's CONVERT_TZ, which needs the
  time zone tables): the fast_date_hierarchy tag (orders.templatetags.orders_admin) lists years from
  MIN and MAX, months and days from the calendar.
- the optimizer's own choice of index, which for two filters or more may read most of the table: each
  list names the index for its filters, and each of its queries runs under a time limit that the page
  reports instead of failing (orders.listquery; FastListMixin.list_indexes).
Sorting is limited to the received time, which every list index ends with; any other sort would be a
filesort of the whole table. Totals run in their own request so the list never waits for them, and
above the count limit only when asked for. Filtering is limited to the lists' own filters, date
hierarchy and search: any other field lookup in the query string could be a scan, and is refused.

The ledger keeps a row per status event, so an order that went waiting -> completed has two rows. The
order list, its count, its totals and its CSV therefore hold orders, each at its current status (the
row with Order.is_current, served by the (is_current, created_at) index), unless staff switch to
status events (RowsFilter); every label says which of the two is shown.
"""

import csv
import functools
import itertools
import json
import operator
import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import NamedTuple

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import BadRequest, PermissionDenied
from django.core.paginator import Paginator
from django.db import DatabaseError
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_date
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, ngettext_lazy, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from partners.base import Extra, ExtraKind, OrderStatus
from partners.registry import PARTNERS, find_partner, partner_choices

from . import listquery, outbox, reconcile
from .health import INVALID_WINDOW_HOURS, invalid_deliveries_since
from .models import Delivery, Order, OutboundAttempt, OutboundEvent, ReconcileRun
from .replay import ReplaySummary, replay_deliveries
from .templatetags.orders_admin import money

# A count beyond this many rows is shown as "more than"; counting it stays a short index range.
COUNT_LIMIT = 10_000
# Seconds the paginator's count may take (within ADMIN_QUERY_TIMEOUT): a list whose count would take
# longer shows its first pages without it rather than keep staff waiting.
COUNT_TIMEOUT = 0.2
# A prefix search that matches more rows than this, all in one column, is listed by that column instead of
# the time received (FastListMixin.through_index).
SEARCH_PROBE = 2_000
# Rows fetched per query by the CSV export; memory holds one chunk, never the whole result.
EXPORT_CHUNK = 2_000
# The replay action gives each delivery a message (unchanged ones aside), up to this many, then the totals.
REPLAY_MESSAGES = 50
# More than this many is a job for `manage.py replay_webhook`, not for one HTTP request.
REPLAY_LIMIT = 1_000
# An order's detail page lists at most this many of its deliveries (a sender stuck resending one
# postback can leave thousands).
DETAIL_DELIVERIES = 200
# The order list's query parameter, and its value, for status events instead of orders (RowsFilter).
ROWS_PARAM = "rows"
EVENTS = "events"
# A cell starting with one of these runs as a formula in a spreadsheet.
FORMULA_PREFIXES = "=+-@\t\r"
# Where a spreadsheet may start a cell inside one of our quoted CSV values: at the value's start, and
# after a separator it splits on instead of our comma (";" is the list separator of ru-RU and others; a
# tab; a line break, which ends the row once the quotes no longer line up), past quotes and spaces.
CELL_START = re.compile(rf'(^|[;\t\r\n])([ "]*)(?=[{re.escape(FORMULA_PREFIXES)}])')

# A colour for every status and outcome (tests/test_admin_deliveries.py checks that none is missing).
STATUS_COLOURS = {
    OrderStatus.WAITING: "#6b7280",
    OrderStatus.PENDING: "#b45309",
    OrderStatus.COMPLETED: "#15803d",
    OrderStatus.REJECTED: "#b91c1c",
}
RUN_STATE_COLOURS = {
    ReconcileRun.State.RUNNING: "#1d4ed8",
    ReconcileRun.State.SUCCEEDED: "#15803d",
    ReconcileRun.State.FAILED: "#b91c1c",
}
EVENT_STATE_COLOURS = {
    OutboundEvent.State.PENDING: "#b45309",
    OutboundEvent.State.DELIVERED: "#15803d",
    OutboundEvent.State.FAILED: "#b91c1c",
}
OUTCOME_COLOURS = {
    Delivery.Outcome.CREATED: "#15803d",
    Delivery.Outcome.DUPLICATE: "#6b7280",
    Delivery.Outcome.INVALID: "#b45309",
    Delivery.Outcome.ERROR: "#b91c1c",
}


def badge(label, colour):
    return format_html(
        '<span class="badge" style="background:{};color:#fff;padding:1px 6px;border-radius:8px;'
        'white-space:nowrap">{}</span>',
        colour, label,
    )


def status_badge(status):
    return badge(OrderStatus(status).label, STATUS_COLOURS[status]) if status else "-"


def pretty_json(value):
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def extra_rows(order: Order, *, beside_money: bool) -> list[tuple[str, str]]:
    """The order's extras as (label, text): those its partner declares, in its order, then any other key
    (one its parser no longer declares) by name. `beside_money` picks the ones shown with the amounts."""
    partner = find_partner(order.partner)
    declared = {extra.name: extra for extra in partner.extra_fields} if partner else {}
    names = [name for name in declared if name in order.extras]
    names += sorted(name for name in order.extras if name not in declared)
    rows = []
    for name in names:
        extra = declared.get(name)
        if (extra is not None and extra.beside_money) == beside_money:
            rows.append((str(extra.label) if extra else name, extra_text(extra, order.extras[name])))
    return rows


def extra_text(extra: Extra | None, value) -> str:
    """An extra's value in the admin's words: yes/no, a choice's label, a time in TIME_ZONE."""
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if extra is not None and extra.choices:
        return str(dict(extra.choices).get(value, value))
    if extra is not None and extra.kind == ExtraKind.TIMESTAMP and isinstance(value, str):
        try:
            return formats.localize(timezone.localtime(datetime.fromisoformat(value)))
        except ValueError:
            return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "-" if value is None else str(value)


class BoundedCountPaginator(Paginator):
    """A paginator that never counts more than COUNT_LIMIT (+1) rows.

    `count` is exact up to COUNT_LIMIT; above it, `count_capped` is True and pages stop at the limit
    (staff narrow the list with filters, search or the date hierarchy instead of paging that deep).
    """

    count_limit = COUNT_LIMIT
    # Set when the count met ADMIN_QUERY_TIMEOUT (orders.listquery): the list still shows its first pages.
    count_timed_out = False

    @cached_property
    def count(self):
        # values("pk") drops annotations (the current status subquery) that a count does not need.
        try:
            with listquery.time_limit(COUNT_TIMEOUT):
                return self.object_list.values("pk").order_by()[: self.count_limit + 1].count()
        except DatabaseError as error:
            if not listquery.timed_out(error):
                raise
            self.count_timed_out = True
            return self.count_limit + 1

    @property
    def count_capped(self):
        return self.count > self.count_limit


# The titles of the lists' filters, which the admin shows as "By <title>". In Russian «По …» takes the
# dative («По статусу», not «По статус»), so each title has its own context: the same word as a column
# header stays nominative.
FILTER_TITLES = {
    "partner": pgettext_lazy("filter title after 'By'", "network"),
    "status": pgettext_lazy("filter title after 'By'", "status"),
    "current status": pgettext_lazy("filter title after 'By'", "current status"),
    "currency": pgettext_lazy("filter title after 'By'", "currency"),
    "conflict": pgettext_lazy("filter title after 'By'", "conflict"),
    "received": pgettext_lazy("filter title after 'By'", "date received"),
    "time of order": pgettext_lazy("filter title after 'By'", "date of order"),
    "outcome": pgettext_lazy("filter title after 'By'", "outcome"),
    "source": pgettext_lazy("filter title after 'By'", "source"),
    "state": pgettext_lazy("filter title after 'By'", "state"),
    "event type": pgettext_lazy("filter title after 'By'", "event type"),
    "reconciliation run": pgettext_lazy("filter title after 'By'", "reconciliation run"),
    "reward ready": pgettext_lazy("filter title after 'By'", "payout readiness"),
    "conflict review": pgettext_lazy("filter title after 'By'", "conflict review"),
    "received lately": pgettext_lazy("filter title after 'By'", "recent arrival"),
}


def titled(filter_class, title: str):
    """`filter_class` (a field filter, which takes its title from the field's verbose name) under `title`."""

    class Titled(filter_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = FILTER_TITLES[title]

    Titled.__name__ = Titled.__qualname__ = f"Titled{filter_class.__name__}"
    return Titled


class PartnerFilter(admin.SimpleListFilter):
    """Partners from the registry, the configured ones included: no SELECT DISTINCT over the table to find them."""

    title = FILTER_TITLES["partner"]
    parameter_name = "partner"

    def lookups(self, request, model_admin):
        return partner_choices()

    def queryset(self, request, queryset):
        return queryset.filter(partner=self.value()) if self.value() else queryset


def stored_currencies():
    """Every currency of the ledger, in order (see CurrencyFilter for what it costs)."""
    return Order.objects.order_by("currency").values_list("currency", flat=True).distinct()


class CurrencyFilter(admin.SimpleListFilter):
    """The currencies stored, whichever networks sent them (the column has no fixed choices: each partner
    says which codes it accepts).

    SELECT DISTINCT currency is answered from an index that starts with the currency: MariaDB reads it with
    a loose index scan ("Using index for group-by"), one probe per currency, never the table's rows.
    """

    title = FILTER_TITLES["currency"]
    # The parameter of Django's field filter, which this one replaces: saved links keep working.
    parameter_name = "currency__exact"

    def lookups(self, request, model_admin):
        return [(currency, currency) for currency in stored_currencies()]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value()) if self.value() else queryset


class RewardReadyFilter(admin.SimpleListFilter):
    """Whether the network says the money can be paid out (Admitad's reward_ready extra): the overview's
    "ready to pay out" links here."""

    title = FILTER_TITLES["reward ready"]
    parameter_name = "reward_ready"

    def lookups(self, request, model_admin):
        return [("yes", _("yes")), ("no", _("no"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(extras__reward_ready=True)
        if self.value() == "no":
            return queryset.exclude(extras__reward_ready=True)
        return queryset


class ConflictReviewFilter(admin.SimpleListFilter):
    """Money conflicts by whether staff marked them as looked at (the overview and check_health count the
    ones not looked at, and link here)."""

    title = FILTER_TITLES["conflict review"]
    parameter_name = "conflict_review"

    def lookups(self, request, model_admin):
        return [("pending", _("conflicts not looked at")), ("done", _("conflicts looked at"))]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(has_conflict=True, conflict_reviewed_at=None)
        if self.value() == "done":
            return queryset.filter(has_conflict=True, conflict_reviewed_at__isnull=False)
        return queryset


class LastHoursFilter(admin.SimpleListFilter):
    """Deliveries received in the last 24 hours, the window of check_health's invalid deliveries check
    (the overview links here)."""

    title = FILTER_TITLES["received lately"]
    parameter_name = "last_hours"

    def lookups(self, request, model_admin):
        return [(str(INVALID_WINDOW_HOURS), _("in the last 24 hours"))]

    def queryset(self, request, queryset):
        if self.value() == str(INVALID_WINDOW_HOURS):
            return queryset.filter(received_at__gte=invalid_deliveries_since(timezone.now()))
        return queryset


def shows_events(params) -> bool:
    """Whether an order list request (its query parameters) asks for status events rather than orders."""
    return params.get(ROWS_PARAM) == EVENTS


class RowsFilter(admin.SimpleListFilter):
    """What a row of the order list is: an order at its current status (the default), or a status event.

    The ledger keeps a row per status event; counted or summed as they are, an order that went
    waiting -> completed would count twice, with its money. So by default the list holds each order's
    current row only (Order.is_current), and every other filter applies to that row: status
    "completed" means orders whose current status is completed, a currency or a conflict is that of
    the current status. Staff who want the events ask for them here.
    """

    title = _("show")
    parameter_name = ROWS_PARAM
    template = "admin/orders/rows_filter.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        if self.value() not in (None, EVENTS):
            raise IncorrectLookupParameters(f"{ROWS_PARAM}={self.value()!r}: not a choice")

    def lookups(self, request, model_admin):
        return [(EVENTS, _("status events"))]

    def queryset(self, request, queryset):
        return queryset if self.value() == EVENTS else queryset.filter(is_current=True)

    def choices(self, changelist):
        # No "All": the default is the orders, and every row would be the events.
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[ROWS_PARAM]),
            "display": _("orders, at their current status"),
        }
        yield {
            "selected": self.value() == EVENTS,
            "query_string": changelist.get_query_string({ROWS_PARAM: EVENTS}),
            "display": _("status events"),
        }


class StatusFilter(admin.ChoicesFieldListFilter):
    """The status filter, titled for what it filters on: in the order view, each order's current status."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = FILTER_TITLES["status" if shows_events(request.GET) else "current status"]


def comparable(moment: datetime) -> datetime:
    """`moment`, if the database can compare a column with it; IncorrectLookupParameters if not.

    Django converts each bound to UTC for the query, which overflows at the ends of the calendar
    (0001-01-01 00:00 in Moscow is in year 0 in UTC) and would fail the request with a 500.
    """
    try:
        moment.astimezone(UTC)
    except OverflowError as error:
        raise IncorrectLookupParameters(f"{moment.date()}: out of range") from error
    return moment


class DateRangeFilter(admin.FieldListFilter):
    """From/to dates (inclusive) on a datetime field, taken as whole days in the current time zone."""

    template = "admin/orders/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.parameter_from = f"{field_path}__from"
        self.parameter_to = f"{field_path}__to"
        super().__init__(field, request, params, model, model_admin, field_path)
        # The base class moved our parameters from `params` to used_parameters, as lists.
        dates = {}
        for name, values in list(self.used_parameters.items()):
            raw = values[-1] if isinstance(values, list) else values
            self.used_parameters[name] = raw
            if raw:
                try:
                    dates[name] = parse_date(raw)
                except ValueError:  # well formed but no such day, like 2026-02-30
                    dates[name] = None
                if dates[name] is None:
                    raise IncorrectLookupParameters(f"{name}: not a date")
        # The bounds as times, checked here so that a day the database cannot compare with (the day
        # after 9999-12-31, midnight of 0001-01-01 east of UTC) is refused before any query runs.
        zone = timezone.get_current_timezone()
        self.bounds = {}
        if start := dates.get(self.parameter_from):
            self.bounds[f"{field_path}__gte"] = comparable(datetime.combine(start, time(), zone))
        if end := dates.get(self.parameter_to):
            try:
                after_end = end + timedelta(days=1)
            except OverflowError as error:
                raise IncorrectLookupParameters(f"{self.parameter_to}: out of range") from error
            self.bounds[f"{field_path}__lt"] = comparable(datetime.combine(after_end, time(), zone))

    def expected_parameters(self):
        return [self.parameter_from, self.parameter_to]

    def has_output(self):
        return True

    def queryset(self, request, queryset):
        return queryset.filter(**self.bounds)

    def choices(self, changelist):
        # One "choice": the form, with the other parameters of the list kept as hidden inputs.
        kept = {
            key: value for key, value in changelist.get_filters_params().items()
            if key not in self.expected_parameters()
        }
        if changelist.query:
            kept["q"] = changelist.query
        yield {
            "parameter_from": self.parameter_from,
            "parameter_to": self.parameter_to,
            "value_from": self.used_parameters.get(self.parameter_from, ""),
            "value_to": self.used_parameters.get(self.parameter_to, ""),
            "kept": [(key, item) for key, values in kept.items() for item in _as_list(values)],
            "clear_url": changelist.get_query_string(remove=self.expected_parameters()),
        }


def _as_list(value):
    return value if isinstance(value, list) else [value]


class RowNames(NamedTuple):
    """What the rows of a list are, in the words staff read: its title, and its rows counted."""

    title: str
    counted: str  # ngettext_lazy with a "count" placeholder
    more_than: str  # with a "limit" placeholder


ORDER_ROWS = RowNames(
    _("Orders at their current status"),
    ngettext_lazy("%(count)s order", "%(count)s orders", "count"),
    _("more than %(limit)s orders"),
)
STATUS_EVENT_ROWS = RowNames(
    _("Order status events"),
    ngettext_lazy("%(count)s status event", "%(count)s status events", "count"),
    _("more than %(limit)s status events"),
)
DELIVERY_ROWS = RowNames(
    _("Deliveries"),
    ngettext_lazy("%(count)s delivery", "%(count)s deliveries", "count"),
    _("more than %(limit)s deliveries"),
)
RUN_ROWS = RowNames(
    _("Reconciliation runs"),
    ngettext_lazy("%(count)s run", "%(count)s runs", "count"),
    _("more than %(limit)s runs"),
)

EVENT_ROWS = RowNames(
    _("Outbound events"),
    ngettext_lazy("%(count)s event", "%(count)s events", "count"),
    _("more than %(limit)s events"),
)


class FastChangeList(ChangeList):
    """Django's ChangeList, which refuses any query string it would answer with a 500 or a table scan.

    Django already raises IncorrectLookupParameters (the list redirects to ?e=1) for most bad input,
    but not for a date hierarchy period that ends after 9999-12-31 or starts before year 1 in UTC,
    and it filters by any field lookup left over after the list filters, such as `offer_name__icontains`
    or a `created_at__month` without a year: a scan of the table. Those are refused here too.
    """

    def get_filters(self, request):
        try:
            filters = super().get_filters(request)
        except (ValueError, OverflowError) as error:  # the end of a year, month or day after 9999-12-31
            raise IncorrectLookupParameters(error) from error
        remaining = filters[2]
        hierarchy = f"{self.date_hierarchy}__gte", f"{self.date_hierarchy}__lt"
        given = self.get_filters_params()
        for key, values in remaining.items():
            # Django puts the date hierarchy's range among the left-over lookups, in place of its year.
            if key in hierarchy and f"{self.date_hierarchy}__year" in given:
                for moment in values:
                    comparable(moment)
            else:
                raise IncorrectLookupParameters(f"{key}: not a filter of this list")
        return filters

    @cached_property
    def row_names(self) -> RowNames:
        return self.model_admin.row_names(self.params)

    # The column a search that matched many rows is listed by, instead of the time (through_index).
    ordered_by = None

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return self.model_admin.through_index(self, queryset)

    def count_text(self) -> str:
        """The rows counted, such as "3 orders", or "more than 10000 orders" when the count stopped."""
        if self.paginator.count_timed_out:
            return gettext("too many to count in time (narrow the filter to count them)")
        if self.paginator.count_capped:
            return self.row_names.more_than % {"limit": self.paginator.count_limit}
        return self.row_names.counted % {"count": self.result_count}


class RecordAdminMixin:
    """A record the service writes (the ledger by orders.ingest, deliveries as they arrive, reconciliation
    runs, events with the ledger): nobody adds, edits or deletes one here. Where `change_runs_actions` is
    set, the change permission decides who may run the list's actions (replay, resend), and nothing else."""

    change_runs_actions = False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return self.change_runs_actions and obj is None and super().has_change_permission(request)


class FastListMixin:
    """What both lists share: the bounded paginator, newest first, and no table-wide sorting."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    # Facet counts are one COUNT(*) per filter choice over the filtered rows: never at this size.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100

    # The indexes the list reads, as (name, the columns it starts with before the list's time column),
    # from the rarest filter to the commonest (listquery.choose_index): the first whose columns are all
    # filtered reads the page. Each name is an index of the model (tests/test_admin_query_plans.py).
    list_indexes = ()
    # {search column: its index}, for each prefix search column (FastListMixin.through_index).
    search_indexes = {}

    def get_changelist(self, request, **kwargs):
        return FastChangeList

    def get_sortable_by(self, request):
        return (self.date_field,)

    def through_index(self, changelist, queryset):
        """`queryset` (the list's rows for its filters and search) reading the index that serves them.

        A prefix search that matches up to SEARCH_PROBE rows reads the search columns' indexes and sorts
        what it found by time. One that matches more in a single column (a short prefix of an id, whose
        matches may all lie years back) lists them by that column, highest first, along its index, and
        `changelist.ordered_by` says so; matched in several columns, they are sorted by time under the
        time limit. Without a search, the filters choose the index (listquery.choose_index).
        """
        if changelist.query and self.search_indexes:
            matches = self.prefix_matches(changelist.query)
            matching = [column for column, count in matches.items() if count]
            if sum(matches.values()) <= SEARCH_PROBE:
                return listquery.with_index(queryset, [self.search_indexes[column] for column in matching]
                                            or self.search_indexes.values())
            if len(matching) == 1 and len(changelist.query.split()) == 1:
                (column,) = matching
                changelist.ordered_by = self.model._meta.get_field(column).verbose_name
                return listquery.with_index(queryset, [self.search_indexes[column]]).order_by(f"-{column}", "-pk")
            return listquery.with_index(queryset, self.search_indexes.values())
        name = listquery.choose_index(listquery.equality_columns(queryset), self.list_indexes)
        return listquery.with_index(queryset, [name]) if name else queryset

    def get_search_results(self, request, queryset, search_term):
        """Django's prefix search, over only the columns in which some value starts with the search
        terms: a condition on a column that matches nothing would still keep its index out of the
        query's plan (an OR of ranges is read as one range only if every column of it has one)."""
        if not (search_term and self.search_indexes):
            return super().get_search_results(request, queryset, search_term)
        columns = [column for column, count in self.prefix_matches(search_term).items() if count]
        if not columns:
            return queryset.none(), False
        for term in search_term.split():
            queryset = queryset.filter(functools.reduce(operator.or_, (
                Q(**{f"{column}__istartswith": term}) for column in columns)))
        return queryset, False

    def prefix_matches(self, search_term: str) -> dict[str, int]:
        """{search column: how many rows the search terms start a value of in it, up to SEARCH_PROBE + 1}:
        an index range read of each column, which stops early."""
        return {
            column: sum(
                self.model.objects.filter(**{f"{column}__istartswith": term}).values("pk")[: SEARCH_PROBE + 1]
                .count() for term in search_term.split())
            for column in self.search_indexes
        }

    def changelist_view(self, request, extra_context=None):
        """The list, each of its queries under ADMIN_QUERY_TIMEOUT; past it, a page that says so. Only for
        reading: an action (POST) runs the write path, whose queries are not the list's."""
        if request.method != "GET":
            return self.list_response(request, extra_context)
        with listquery.time_limit():
            try:
                response = self.list_response(request, extra_context)
                if hasattr(response, "render"):
                    response.render()  # its queries run while it renders: inside the limit
                return response
            except DatabaseError as error:
                if not listquery.timed_out(error):
                    raise
        return TemplateResponse(request, "admin/orders/timed_out.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "title": self.row_names(request.GET).title,
            "seconds": settings.ADMIN_QUERY_TIMEOUT,
            "list_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
        })

    def row_names(self, params) -> RowNames:
        """What this list's rows are, for a request with these query parameters."""
        raise NotImplementedError

    def list_response(self, request, extra_context=None):
        # The rows' own title, such as "Orders at their current status", rather than Django's "Select
        # order to change": nothing here is changed, and "Выберите <nominative> для изменения" reads badly.
        title = self.row_names(request.GET).title
        return super().changelist_view(request, {"title": title, **(extra_context or {})})


class OrderChangeList(FastChangeList):
    """The order list, which knows whether it shows orders or status events (see RowsFilter)."""

    @cached_property
    def shows_events(self) -> bool:
        return shows_events(self.params)

    def other_rows_url(self) -> str:
        """This list with the same filters, as status events if it shows orders and the other way round."""
        if self.shows_events:
            return self.get_query_string(remove=[ROWS_PARAM])
        return self.get_query_string({ROWS_PARAM: EVENTS})


@admin.register(Order)
class OrderAdmin(RecordAdminMixin, FastListMixin, admin.ModelAdmin):
    date_field = "created_at"
    # The order view; the status event view adds the event's own status and that of its order.
    # Narrow enough for a 1400 px screen beside the sidebar and the filters (orders/static/orders/admin.css):
    # the order's ids and its network share a cell, the money is one cell per amount; the offer, the click
    # and the time of order are on the detail page.
    list_display = ("order_cell", "order_current_status", "commission_amount", "revenue_amount", "received")
    event_list_display = ("order_cell", "status", "current", "commission_amount", "revenue_amount", "received")
    list_filter = (
        RowsFilter, PartnerFilter, ("order_status", StatusFilter), CurrencyFilter,
        ("has_conflict", titled(admin.BooleanFieldListFilter, "conflict")), ConflictReviewFilter, RewardReadyFilter,
        ("created_at", titled(DateRangeFilter, "received")),
        ("time_of_order", titled(DateRangeFilter, "time of order")),
    )
    actions = ("mark_conflict_reviewed",)
    # Prefix search ('^': LIKE 'x%'), which the index on each column serves; an exact id is a prefix of itself.
    search_fields = ("^uniq_id", "^order_number", "^click_id")
    search_indexes = {"uniq_id": "order_uniq_id", "order_number": "order_order_number", "click_id": "order_click_id"}
    list_indexes = (
        ("order_conflict_created", ("has_conflict=True",)),
        ("order_currency_status_created", ("currency", "order_status")),
        ("order_partner_status_created", ("partner", "order_status")),
        # A currency other than roubles is rare; a network may be as common as all of them.
        ("order_currency_created", ("currency",)),
        ("order_partner_created", ("partner",)),
        ("order_status_created", ("order_status",)),
        ("order_current_created", ("is_current",)),
    )
    search_help_text = _("Unique id, order number or click id: the exact value or its beginning.")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    change_list_template = "admin/orders/order/change_list.html"
    change_form_template = "admin/orders/order/change_form.html"
    money_fields = ("revenue_amount", "commission_amount", "currency")
    fieldsets = (
        (None, {"fields": ("partner", "uniq_id", "uniq_id_derived", "order_number", "click_id", "status",
                           "original_status", "current", "has_conflict", "conflict_reviewed_at",
                           "conflict_reviewed_by")}),
        (_("Money"), {"fields": money_fields}),
        (_("Offer"), {"fields": ("offer_name", "offer_id", "sub", "sub2", "sub3", "sub4", "sub5")}),
        (_("Click"), {"fields": ("ip", "user_agent", "click_time", "time_of_order")}),
        (_("Network"), {"fields": ("extras_table",)}),
        (_("Received"), {"fields": ("created_at", "updated_at", "raw_payload_pretty")}),
    )

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if not shows_events(request.GET):
            return queryset  # every listed row is its order's current one
        # The key's current status, one primary-key lookup per shown row through the unique index.
        current = Order.objects.filter(
            partner=OuterRef("partner"), uniq_id=OuterRef("uniq_id"), is_current=True
        ).values("order_status")[:1]
        return queryset.annotate(current_status=Subquery(current))

    def get_changelist(self, request, **kwargs):
        return OrderChangeList

    def get_list_display(self, request):
        return self.event_list_display if shows_events(request.GET) else self.list_display

    def row_names(self, params) -> RowNames:
        return STATUS_EVENT_ROWS if shows_events(params) else ORDER_ROWS

    def has_review_conflict_permission(self, request):
        return request.user.has_perm("orders.review_conflict")

    @admin.action(description=_("Mark conflict as looked at"), permissions=["review_conflict"])
    def mark_conflict_reviewed(self, request, queryset):
        """Stamp the selected conflicts as looked at, by whom and when; rows without a conflict, or already
        looked at, stay as they are."""
        marked = queryset.filter(has_conflict=True, conflict_reviewed_at=None).update(
            conflict_reviewed_at=timezone.now(), conflict_reviewed_by=request.user.get_username())
        self.message_user(request, ngettext_lazy("%(count)s conflict marked as looked at.",
                                                 "%(count)s conflicts marked as looked at.", "count")
                          % {"count": marked}, messages.SUCCESS)

    def get_fieldsets(self, request, obj=None):
        """The fieldsets, with the extras its network wants read beside the amounts (Extra.beside_money),
        such as Admitad's "reward ready: yes", in the money section of an order that has them."""
        if obj is None or not extra_rows(obj, beside_money=True):
            return self.fieldsets
        return tuple(
            (title, {"fields": (*self.money_fields, "money_extras")} if options["fields"] == self.money_fields
             else options)
            for title, options in self.fieldsets
        )

    def get_readonly_fields(self, request, obj=None):
        return [name for fieldset in self.get_fieldsets(request, obj) for name in fieldset[1]["fields"]]

    @admin.display(description=_("status"))
    def status(self, order):
        return status_badge(order.order_status)

    @admin.display(description=_("current status"))
    def current(self, order):
        if order.is_current:
            return format_html("{} ✓", status_badge(order.order_status))
        return status_badge(order.current_status)

    @admin.display(description=_("current status"))
    def order_current_status(self, order):
        """The order view's status column: each of its rows is an order's current one."""
        return status_badge(order.order_status)

    def get_sortable_by(self, request):
        return ("received",)

    @admin.display(description=_("received"), ordering="created_at")
    def received(self, order):
        """The time received, in the short form that fits the list: the date, and the time under it."""
        moment = timezone.localtime(order.created_at)
        return format_html("{}<br><small>{}</small>", formats.date_format(moment, "SHORT_DATE_FORMAT"),
                           formats.time_format(moment, "TIME_FORMAT"))

    @admin.display(description=_("order"))
    def order_cell(self, order):
        """The unique id, and below it the network, the shop's order number and the user's click id."""
        ids = f"{order.partner} · {order.order_number or '-'} · {order.click_id}"
        return format_html('<div class="order-cell"><span title="{}">{}</span><small title="{}">{}</small></div>',
                           order.uniq_id, order.uniq_id, ids, ids)

    @admin.display(description=_("revenue"))
    def revenue_amount(self, order):
        return money(order.revenue)

    @admin.display(description=_("commission"))
    def commission_amount(self, order):
        return format_html('{} <span class="currency">{}</span>', money(order.commission_fee), order.currency)

    @admin.display(description=_("payout"))
    def money_extras(self, order):
        """What the network says of the money beyond the amounts, such as "reward ready: yes"."""
        return format_html_join(mark_safe("<br>"), "{}: {}", extra_rows(order, beside_money=True))

    @admin.display(description=_("network's own values"))
    def extras_table(self, order):
        rows = extra_rows(order, beside_money=False)
        if not rows:
            return "-"
        return format_html('<table class="extras"><tbody>{}</tbody></table>',
                           format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description=_("raw payload"))
    def raw_payload_pretty(self, order):
        return pretty_json(order.raw_payload)

    def get_urls(self):
        return [
            path("totals/", self.admin_site.admin_view(self.totals_view), name="orders_order_totals"),
            path("export.csv", self.admin_site.admin_view(self.export_view), name="orders_order_export"),
            *super().get_urls(),
        ]

    def filtered_changelist(self, request):
        """The list for this request's filters and search, whose queryset is all its rows, every page.

        What the list page answers with a redirect to ?e=1 is a 400 here: the totals and the CSV have
        no page of their own to fall back to.
        """
        try:
            return self.get_changelist_instance(request)
        except IncorrectLookupParameters as error:
            raise BadRequest(f"invalid filter: {error}") from error

    def totals_view(self, request):
        """Revenue and commission per currency for the list's current filter (loaded by the list page):
        of each order at its current status, or of every status event when the list shows those.
        """
        if not self.has_view_permission(request):
            raise admin.options.PermissionDenied
        with listquery.time_limit():
            try:
                changelist = self.filtered_changelist(request)
                totals = per_currency_totals(changelist.queryset, request.GET.get(CurrencyFilter.parameter_name))
            except DatabaseError as error:
                if not listquery.timed_out(error):
                    raise
                return TemplateResponse(request, "admin/orders/timed_out_note.html",
                                        {"seconds": settings.ADMIN_QUERY_TIMEOUT})
        return TemplateResponse(request, "admin/orders/order/totals.html",
                                {"totals": totals, "shows_events": changelist.shows_events})

    def export_view(self, request):
        """The filtered list as CSV, streamed in keyset chunks so a million rows never sit in memory.

        Its file name and its headers say whether it holds orders (at their current status) or
        status events, as the list does.
        """
        if not self.has_view_permission(request):
            raise admin.options.PermissionDenied
        with listquery.time_limit():
            try:
                changelist = self.filtered_changelist(request)
                columns = STATUS_EVENT_EXPORT_COLUMNS if changelist.shows_events else ORDER_EXPORT_COLUMNS
                rows = export_rows(changelist.queryset, columns)
                # The header and the first chunk now: a filter too wide to answer in time gets a page
                # that says so, not a download that breaks off.
                first = [next(rows), next(rows, None)]
            except DatabaseError as error:
                if not listquery.timed_out(error):
                    raise
                return TemplateResponse(request, "admin/orders/timed_out.html", {
                    **self.admin_site.each_context(request), "opts": self.opts, "title": _("Download CSV"),
                    "seconds": settings.ADMIN_QUERY_TIMEOUT, "list_url": reverse("admin:orders_order_changelist"),
                })
        rows = itertools.chain([row for row in first if row is not None], limited_rows(rows))
        response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        kind = "order-status-events" if changelist.shows_events else "orders-current-status"
        response["Content-Disposition"] = f'attachment; filename="{kind}-{stamp}.csv"'
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self.get_object(request, object_id)
        extra = {}
        if order is not None:
            history = list(
                Order.objects.filter(partner=order.partner, uniq_id=order.uniq_id).order_by("created_at", "pk")
            )
            deliveries = Delivery.objects.filter(order__in=history).order_by("received_at", "pk")
            extra = {
                "history": history,
                "current_order": next((row for row in history if row.is_current), None),
                "deliveries": deliveries[:DETAIL_DELIVERIES],
                "deliveries_limit": DETAIL_DELIVERIES,
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


def per_currency_totals(queryset, currency: str | None) -> list[dict]:
    """[{currency, rows, revenue, commission}] of `queryset`, by currency. With the currency filtered,
    one aggregate without GROUP BY: grouping would put the rows' one group through a temporary table
    and a sort, which MariaDB does not skip for a column fixed by the WHERE clause."""
    sums = {"rows": Count("pk"), "revenue": Sum("revenue"), "commission": Sum("commission_fee")}
    if currency:
        totals = queryset.order_by().aggregate(**sums)
        return [{"currency": currency, **totals}] if totals["rows"] else []
    return list(queryset.order_by().values("currency").annotate(**sums).order_by("currency"))


# The CSV's columns: (field, header). Each starts with the id, which export_rows pages by. An order
# row's status is its order's current status; a status event row carries both.
_ORDER_FIELDS = (
    ("partner", _("partner")), ("uniq_id", _("unique id")), ("order_number", _("order number")),
    ("click_id", _("click id (user)")),
)
_DETAIL_FIELDS = (
    ("revenue", _("revenue")), ("commission_fee", _("commission")), ("currency", _("currency")),
    ("offer_name", _("offer name")), ("offer_id", _("offer id")),
    ("time_of_order", _("time of order")), ("created_at", _("received")), ("has_conflict", _("conflict")),
    ("extras", _("network's own values")),  # a JSON object
)
ORDER_EXPORT_COLUMNS = (
    ("id", _("id")), *_ORDER_FIELDS, ("order_status", _("current status")), ("original_status", _("status as sent")),
    *_DETAIL_FIELDS,
)
STATUS_EVENT_EXPORT_COLUMNS = (
    ("id", _("status event id")), *_ORDER_FIELDS, ("order_status", _("status of the event")),
    ("original_status", _("status as sent")), ("current_status", _("current status of the order")), *_DETAIL_FIELDS,
)


def export_rows(queryset, columns):
    """Header, then one row per listed row, newest first (the list's order), read EXPORT_CHUNK rows per
    query.

    Keyset pagination on (created_at, id) rather than QuerySet.iterator(): MySQLdb buffers a whole
    result set on the client, so an iterator over a million rows would hold them all at once. The key
    is the list's order, so each chunk reads on along the index the list reads (the filters' index
    ends with created_at, and with the id as every InnoDB index does). Only the exported columns are
    read, as tuples: no raw payload to fetch and decode, no model per row.
    """
    yield [str(header) for _name, header in columns]
    names = [name for name, _header in columns]
    queryset = queryset.order_by("-created_at", "-pk").values_list("created_at", *names)
    chunk = list(queryset[:EXPORT_CHUNK])
    while chunk:
        for row in chunk:
            yield [_csv_value(value) for value in row[1:]]
        if len(chunk) < EXPORT_CHUNK:
            return
        last_time, last_pk = chunk[-1][0], chunk[-1][1]  # the columns start with the id
        chunk = list(queryset.filter(
            Q(created_at__lt=last_time) | Q(created_at=last_time, pk__lt=last_pk))[:EXPORT_CHUNK])


def limited_rows(rows):
    """`rows` (export_rows) with each query under ADMIN_QUERY_TIMEOUT; a chunk that takes longer ends the
    file with a line that says so, since the download has begun and can no longer become a page."""
    try:
        with listquery.time_limit():
            yield from rows
    except DatabaseError as error:
        if not listquery.timed_out(error):
            raise
        yield [gettext("The export stopped here: a part of it took longer than %(seconds)s s. "
                       "Narrow the filter and download again.") % {"seconds": settings.ADMIN_QUERY_TIMEOUT}]


def _csv_value(value):
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")  # str() writes a TON amount such as 0.000000001 as 1E-9
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = "" if value is None else str(value)
    # Partner-supplied text opens in a spreadsheet: wherever a cell may start (see CELL_START), a
    # leading =, +, - or @ would run as a formula; an apostrophe before it makes it text.
    return CELL_START.sub(r"\1\2'", text)


class _Echo:
    def write(self, value):
        return value


def csv_lines(rows):
    # Every field quoted: a spreadsheet splitting on our comma never splits inside a value.
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL)
    for row in rows:
        yield writer.writerow(row)


class ReconcileRunFilter(admin.SimpleListFilter):
    """The deliveries one reconciliation run stored (the run's page links here). It lists no choices: a run
    is picked from its own page, and listing every run here would grow without end."""

    title = FILTER_TITLES["reconciliation run"]
    parameter_name = "reconcile_run"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        if self.value() is not None and not self.value().isdigit():
            raise IncorrectLookupParameters(f"{self.parameter_name}={self.value()!r}: not a run id")

    def lookups(self, request, model_admin):
        # Only the selected run, so that the filter shows (and applies) while one is selected.
        return [(self.value(), f"#{self.value()}")] if self.value() else []

    def queryset(self, request, queryset):
        return queryset.filter(reconcile_run_id=int(self.value())) if self.value() else queryset


@admin.register(Delivery)
class DeliveryAdmin(RecordAdminMixin, FastListMixin, admin.ModelAdmin):
    change_runs_actions = True  # replay
    date_field = "received_at"
    list_display = ("id", "received_at", "partner", "source", "method", "outcome_badge", "order_link", "short_error")
    list_filter = (
        ("outcome", titled(admin.ChoicesFieldListFilter, "outcome")),
        ("source", titled(admin.ChoicesFieldListFilter, "source")), PartnerFilter,
        ("received_at", titled(DateRangeFilter, "received")), LastHoursFilter, ReconcileRunFilter,
    )
    ordering = ("-received_at", "-pk")
    list_indexes = (
        ("", ("reconcile_run_id",)),  # a run's deliveries: its foreign key's index, a few rows
        ("delivery_outcome_received", ("outcome=invalid",)),
        ("delivery_outcome_received", ("outcome=error",)),
        ("delivery_source_received", ("source=spool",)),
        ("delivery_source_received", ("source=manual",)),
        ("delivery_source_received", ("source=reconcile",)),
        ("delivery_partner_received", ("partner",)),
        ("delivery_outcome_received", ("outcome",)),
        ("delivery_source_received", ("source",)),
    )
    actions = ("replay",)
    fields = (
        "partner", "source", "method", "query_string", "body_text", "content_type", "headers_pretty",
        "remote_addr", "user_agent", "received_at", "implied_status", "outcome", "error", "error_field",
        "conflict_fields", "order_link", "reconcile_run_link", "spool_id", "processed_at", "replayed_at",
    )
    readonly_fields = fields

    def row_names(self, params) -> RowNames:
        return DELIVERY_ROWS

    @admin.display(description=_("outcome"))
    def outcome_badge(self, delivery):
        return badge(delivery.get_outcome_display(), OUTCOME_COLOURS[delivery.outcome])

    @admin.display(description=_("order"))
    def order_link(self, delivery):
        if delivery.order_id is None:
            return "-"
        url = reverse("admin:orders_order_change", args=[delivery.order_id])
        return format_html('<a href="{}">#{}</a>', url, delivery.order_id)

    @admin.display(description=_("reconciliation run"))
    def reconcile_run_link(self, delivery):
        if delivery.reconcile_run_id is None:
            return "-"
        url = reverse("admin:orders_reconcilerun_change", args=[delivery.reconcile_run_id])
        return format_html('<a href="{}">#{}</a>', url, delivery.reconcile_run_id)

    @admin.display(description=_("error"))
    def short_error(self, delivery):
        return delivery.error[:80]

    @admin.display(description=_("body"))
    def body_text(self, delivery):
        return format_html("<pre>{}</pre>", bytes(delivery.body).decode("utf-8", errors="replace"))

    @admin.display(description=_("headers"))
    def headers_pretty(self, delivery):
        return pretty_json(delivery.headers)

    @admin.action(description=_("Replay the selected deliveries through the current parser"),
                  permissions=["change"])
    def replay(self, request, queryset):
        replay_and_report(self, request, queryset)


def replay_and_report(model_admin: admin.ModelAdmin, request, deliveries) -> None:
    """Replay `deliveries` (up to REPLAY_LIMIT, oldest first) through the write path and tell the user, in
    their language, what became of each (up to REPLAY_MESSAGES) and the totals."""
    if deliveries.values("pk").order_by()[: REPLAY_LIMIT + 1].count() > REPLAY_LIMIT:
        model_admin.message_user(request, gettext(
            "More than %(limit)s deliveries selected: replay them with manage.py replay_webhook instead."
        ) % {"limit": REPLAY_LIMIT}, messages.ERROR)
        return
    summary = ReplaySummary()
    replay_deliveries(deliveries.order_by("received_at", "pk"), summary)
    for line in summary.lines[:REPLAY_MESSAGES]:
        model_admin.message_user(request, line.text, messages.ERROR if line.problem else messages.SUCCESS)
    # The totals, which also count the deliveries that changed nothing (they get no line).
    model_admin.message_user(request, summary.render())


# What a reconciliation run found (orders.reconcile's finding kinds), in the staff's words.
FINDING_LABELS = {
    reconcile.STORED: _("stored: its postback never arrived"),
    reconcile.CONFLICT: _("conflict: the network states other money"),
    reconcile.MISMATCH: _("id mismatch: nothing stored"),
    reconcile.UNKNOWN: _("unknown to the network"),
    reconcile.MALFORMED: _("malformed record: skipped"),
}


@admin.register(ReconcileRun)
class ReconcileRunAdmin(RecordAdminMixin, FastListMixin, admin.ModelAdmin):
    """The runs of `manage.py reconcile`, newest first, read-only; staff with the permission to start a run
    start one per network from the list (in the background: see start_view)."""

    date_field = "started_at"
    list_display = ("id", "started_at", "partner", "window", "state_badge", "fetched", "stored", "conflicts",
                    "mismatches", "unknown", "malformed", "started_by")
    list_filter = (PartnerFilter, ("state", titled(admin.ChoicesFieldListFilter, "state")))
    ordering = ("-started_at", "-pk")
    change_list_template = "admin/orders/reconcilerun/change_list.html"
    fieldsets = (
        (None, {"fields": ("partner", "window", "state_badge", "started_by", "started_at", "finished_at", "pages",
                           "error")}),
        (_("Figures"), {"fields": ("fetched", "stored", "deliveries_link", "conflicts", "mismatches", "unknown",
                                   "malformed")}),
        (_("Report"), {"fields": ("report_table",)}),
    )

    def row_names(self, params) -> RowNames:
        return RUN_ROWS

    def get_readonly_fields(self, request, obj=None):
        return [name for fieldset in self.fieldsets for name in fieldset[1]["fields"]]

    @admin.display(description=_("window"))
    def window(self, run):
        return f"{formats.localize(run.since)} – {formats.localize(run.until)}"

    @admin.display(description=_("state"))
    def state_badge(self, run):
        return badge(run.get_state_display(), RUN_STATE_COLOURS[run.state])

    @admin.display(description=_("deliveries stored"))
    def deliveries_link(self, run):
        count = run.deliveries.count()
        if not count:
            return "0"
        url = reverse("admin:orders_delivery_changelist") + f"?{ReconcileRunFilter.parameter_name}={run.pk}"
        return format_html('<a href="{}">{}</a>', url, ngettext_lazy(
            "%(count)s delivery", "%(count)s deliveries", "count") % {"count": count})

    @admin.display(description=_("findings"))
    def report_table(self, run):
        findings = run.report.get("findings", [])
        if not findings:
            return gettext("Nothing to report: the ledger holds every order event the network listed.") \
                if run.state == ReconcileRun.State.SUCCEEDED else "-"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (FINDING_LABELS.get(finding["kind"], finding["kind"]), finding["uniq_id"], finding["status"],
             _admin_link("admin:orders_order_change", finding["order"]),
             _admin_link("admin:orders_delivery_change", finding["delivery"]), finding["detail"])
            for finding in findings))
        omitted = run.report.get("omitted", 0)
        more = format_html("<p>{}</p>", gettext("… and %(count)s more, counted above but not listed.") % {
            "count": omitted}) if omitted else ""
        headers = (gettext("finding"), gettext("unique id"), gettext("status"), gettext("order"), gettext("delivery"),
                   gettext("detail"))
        return format_html('<table class="reconcile-report"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}',
                           format_html_join("", "<th>{}</th>", ((header,) for header in headers)), rows, more)

    def get_urls(self):
        return [path("start/", self.admin_site.admin_view(self.start_view), name="orders_reconcilerun_start"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        networks = [(slug, PARTNERS[slug].name) for slug in reconcile.configured()]
        may_start = request.user.has_perm("orders.start_reconcilerun")
        return super().changelist_view(request, {"networks": networks if may_start else [], **(extra_context or {})})

    @method_decorator(require_POST)
    def start_view(self, request):
        """Start a run for the network posted, as `manage.py reconcile --partner <network>` in a process of its
        own: the request does not wait for it. The run appears in the list as soon as it starts."""
        if not request.user.has_perm("orders.start_reconcilerun"):
            raise PermissionDenied
        slug = request.POST.get("partner", "")
        if slug not in reconcile.configured():
            raise BadRequest("not a network with API credentials")
        name = PARTNERS[slug].name
        if reconcile.in_progress(slug):
            self.message_user(request, gettext("A run for %(network)s is in progress already; see it below.") % {
                "network": name}, messages.WARNING)
        else:
            reconcile.start_in_background(slug, started_by=f"{request.user.get_username()} (admin)")
            self.message_user(request, gettext(
                "A run for %(network)s has started; it appears below in a few seconds (reload the page).") % {
                "network": name}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:orders_reconcilerun_changelist"))


def _admin_link(name: str, pk) -> str:
    return format_html('<a href="{}">#{}</a>', reverse(name, args=[pk]), pk) if pk else "-"


class OutboundAttemptInline(admin.TabularInline):
    model = OutboundAttempt
    fields = ("at", "status_code", "error", "duration_ms")
    readonly_fields = fields
    ordering = ("-pk",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OutboundEvent)
class OutboundEventAdmin(RecordAdminMixin, FastListMixin, admin.ModelAdmin):
    """The events for the site (orders.outbox), newest first, with their attempts; the backlog above the list.
    Staff who may change events resend them (a failed one releases the later events of its order)."""

    change_runs_actions = True  # resend
    date_field = "created_at"
    # At 1400 px beside the filters; when the next attempt is due is on the event's page.
    list_display = ("public_id", "created_at", "type", "partner", "uniq_id", "state_badge", "attempts", "short_error")
    list_filter = (("state", titled(admin.ChoicesFieldListFilter, "state")),
                   ("type", titled(admin.ChoicesFieldListFilter, "event type")), PartnerFilter)
    # By id, the write order: with the state filter too, a range of the (state, id) index.
    ordering = ("-pk",)
    search_fields = ("=public_id",)
    actions = ("resend",)
    change_list_template = "admin/orders/outboundevent/change_list.html"
    fields = ("public_id", "type", "partner", "uniq_id", "order_link", "created_at", "state_badge", "attempts",
              "next_attempt_at", "delivered_at", "last_error", "body_pretty")
    readonly_fields = fields
    inlines = (OutboundAttemptInline,)

    def row_names(self, params) -> RowNames:
        return EVENT_ROWS

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"backlog": outbox.backlog(), **(extra_context or {})})

    @admin.display(description=_("state"))
    def state_badge(self, event):
        return badge(event.get_state_display(), EVENT_STATE_COLOURS[event.state])

    @admin.display(description=_("last error"))
    def short_error(self, event):
        return event.last_error[:80]

    @admin.display(description=_("order"))
    def order_link(self, event):
        return _admin_link("admin:orders_order_change", event.order_id)

    @admin.display(description=_("body"))
    def body_pretty(self, event):
        return pretty_json(json.loads(event.body))

    @admin.action(description=_("Resend the selected events"), permissions=["change"])
    def resend(self, request, queryset):
        count = outbox.resend(queryset)
        self.message_user(request, ngettext_lazy(
            "%(count)s event will be sent again, with its webhook id unchanged.",
            "%(count)s events will be sent again, with their webhook ids unchanged.", "count") % {"count": count},
            messages.SUCCESS)


# The read API's keys (a module of their own: orders.apikeys_admin).
from . import apikeys_admin  # noqa: E402,F401
