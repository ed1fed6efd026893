"""Template tags of the orders admin."""

import calendar
import datetime
from decimal import Decimal

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.db.models import Max, Min
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def money(value: Decimal | int | None) -> str:
    """An amount as staff read it: exact, without the column's nine trailing zeros, but with at
    least two decimals (1500.000000000 -> 1500.00; 0.000000001 TON stays 0.000000001), with the
    active language's decimal separator (Russian: 1500,00) like every other number of the admin."""
    if value is None:
        return "-"
    value = Decimal(value)
    places = max(-value.normalize().as_tuple().exponent, 2)
    return formats.number_format(value, decimal_pos=places)


def fast_date_hierarchy(cl):
    """Django's date hierarchy without its SELECT DISTINCT year/month/day over the filtered rows.

    Those queries read every matching row (a million on the default list) and, on MariaDB, need the
    server's time zone tables for CONVERT_TZ. Here only MIN and MAX of the whole table are read, one
    end of the created_at index each, whatever the filters: of the filtered rows, MIN and MAX read one
    index end only under a single filter (its index ends with created_at); under two, such as a status
    and a currency, MariaDB reads every row that matches one of them. The years, months and days
    between them come from the calendar, so a link may lead to an empty period. The links use
    Django's own year/month/day parameters, which the ChangeList turns into created_at ranges
    computed in Python, in the current time zone.
    """
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = (f"{field_name}__{part}" for part in ("year", "month", "day"))
    year, month, day = (int(cl.params[name]) if cl.params.get(name) else None
                        for name in (year_field, month_field, day_field))

    def link(filters):
        return cl.get_query_string(filters, [f"{field_name}__"])

    bounds = cl.root_queryset.aggregate(first=Min(field_name), last=Max(field_name))
    if not (bounds["first"] and bounds["last"]):
        return {"show": False}
    first, last = (timezone.localtime(bounds[name]).date() for name in ("first", "last"))
    if year is None and first.year == last.year:
        year = first.year
    if year and month and day:
        date = datetime.date(year, month, day)
        return {
            "show": True,
            "back": {"link": link({year_field: year, month_field: month}),
                     "title": capfirst(formats.date_format(date, "YEAR_MONTH_FORMAT"))},
            "choices": [{"title": capfirst(formats.date_format(date, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        days = [datetime.date(year, month, number) for number in range(1, calendar.monthrange(year, month)[1] + 1)]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {"link": link({year_field: year, month_field: month, day_field: date.day}),
                 "title": capfirst(formats.date_format(date, "MONTH_DAY_FORMAT"))}
                for date in days if first <= date <= last
            ],
        }
    if year:
        months = [datetime.date(year, number, 1) for number in range(1, 13)]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {"link": link({year_field: year, month_field: date.month}),
                 "title": capfirst(formats.date_format(date, "YEAR_MONTH_FORMAT"))}
                for date in months if (first.year, first.month) <= (year, date.month) <= (last.year, last.month)
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: str(number)}), "title": str(number)}
                    for number in range(first.year, last.year + 1)],
    }


@register.tag(name="fast_date_hierarchy")
def fast_date_hierarchy_tag(parser, token):
    return InclusionAdminNode(
        parser, token, func=fast_date_hierarchy, template_name="date_hierarchy.html", takes_context=False
    )
