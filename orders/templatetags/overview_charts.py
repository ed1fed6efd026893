"""The overview's charts (orders.overview.Chart) as SVG with a table of their figures, written in Python.

A 90-day page has a few thousand bars, segments, tooltips and table cells; through template loops and
the money filter they alone took most of the page's 300 ms budget, so they are written here with plain
string formatting. Every text is HTML-escaped; amounts are formatted exactly as the `money` filter does.
"""

from collections.abc import Callable
from decimal import Decimal
from html import escape

from django import template
from django.utils import formats, numberformat
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, gettext, ngettext

register = template.Library()


def money_formatter() -> Callable[[Decimal], str]:
    """The `money` filter (orders_admin) with the active language's separators read once."""
    language = get_language()
    decimal_separator = formats.get_format("DECIMAL_SEPARATOR", language)
    grouping = formats.get_format("NUMBER_GROUPING", language)
    thousand_separator = formats.get_format("THOUSAND_SEPARATOR", language)

    def money(value: Decimal) -> str:
        places = max(-value.normalize().as_tuple().exponent, 2)
        return numberformat.format(value, decimal_separator, places, grouping, thousand_separator, use_l10n=True)

    return money


@register.simple_tag
def overview_chart(chart, statuses) -> str:
    """The chart's SVG (a stacked bar per day, each with its figures as a tooltip) and, folded under it,
    the table of the days that had orders."""
    money = money_formatter()
    date = formats.get_format("SHORT_DATE_FORMAT")
    currency = escape(chart.currency)
    label = escape(gettext("Commission per day, %(name)s, %(currency)s")
                   % {"name": chart.partner_name, "currency": chart.currency})
    bars, rows = [], []
    for day in chart.days:
        shown_day = escape(formats.date_format(day.day, date))
        amounts = [money(segment.commission) for segment in day.segments]
        total = money(day.commission)
        tooltip = [f"{shown_day}: {total} {currency}, "
                   + escape(ngettext("%(count)s order", "%(count)s orders", day.orders) % {"count": day.orders})]
        tooltip += [f"{escape(str(segment.label))}: {amount} ({segment.orders})"
                    for segment, amount in zip(day.segments, amounts, strict=True) if segment.orders]
        rects = "".join(
            f'<rect class="segment" data-status="{segment.status}" data-commission="{segment.commission}" '
            f'x="{day.x}" y="{segment.y}" width="{day.width}" height="{segment.height}" fill="{segment.colour}"></rect>'
            for segment in day.segments if segment.height
        )
        bars.append(
            f'<g class="bar" data-day="{day.day.isoformat()}" data-commission="{day.commission}" '
            f'data-orders="{day.orders}"><title>{"&#10;".join(tooltip)}</title>'
            f'<rect x="{day.x}" y="0" width="{day.width}" height="{chart.height}" fill="transparent"></rect>{rects}</g>'
        )
        if day.orders:
            cells = "".join(f'<td class="amount">{amount} ({segment.orders})</td>'
                            for segment, amount in zip(day.segments, amounts, strict=True))
            rows.append(f'<tr data-day="{day.day.isoformat()}"><td>{shown_day}</td>{cells}'
                        f'<td class="amount">{total} ({day.orders})</td></tr>')
    first, last = chart.days[0].day, chart.days[-1].day
    svg = (
        f'<svg class="chart" viewBox="-2 -4 {chart.width + 4} {chart.height + 22}" role="img" aria-label="{label}">'
        f'<line class="axis" x1="0" y1="{chart.height}" x2="{chart.width}" y2="{chart.height}"></line>'
        + "".join(bars)
        + f'<text x="0" y="{chart.height + 15}">{escape(formats.date_format(first, date))}</text>'
        f'<text x="{chart.width}" y="{chart.height + 15}" text-anchor="end">{escape(formats.date_format(last, date))}'
        "</text></svg>"
    )
    head = "".join(f"<th>{escape(str(status_label))}</th>" for _value, status_label, _colour in statuses)
    summary, day_header, total_header = gettext("Figures per day"), gettext("day"), gettext("total")
    table = (
        f'<details><summary>{escape(summary)}</summary><table class="chart-table"><thead><tr>'
        f"<th>{escape(day_header)}</th>{head}<th>{escape(total_header)}</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )
    return mark_safe(svg + table)  # noqa: S308 (every text above is escaped)
