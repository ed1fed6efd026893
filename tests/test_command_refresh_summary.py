"""manage.py refresh_summary: the changed days, or with --all every day, of the overview's summary."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders import summary
from orders.models import DailySummary
from tests.test_admin_overview import epn, ledger_truth, summarised

pytestmark = pytest.mark.django_db


def refresh(*args) -> str:
    out = StringIO()
    call_command("refresh_summary", *args, stdout=out)
    return out.getvalue()


def test_the_first_refresh_summarises_every_day_and_later_ones_only_the_changed_days():
    epn("E1", "waiting", days_ago=10)
    epn("E2", "completed", days_ago=3)
    assert refresh() == "11 day(s) recomputed\n"  # from the first order's day to today
    assert summarised() == ledger_truth()
    epn("E1", "completed")
    assert refresh() == "2 day(s) recomputed\n"  # E1's two days; E2, seen by the last refresh as it is, none
    assert summarised() == ledger_truth()


def test_all_recomputes_every_day_and_repairs_a_damaged_summary():
    epn("E1", "waiting", days_ago=2)
    later = timezone.now() + summary.LATE_COMMIT + timedelta(minutes=1)
    summary.refresh(now=later)
    DailySummary.objects.update(orders=7)
    summary.refresh(now=later + timedelta(seconds=1))
    assert summarised() != ledger_truth()  # nothing changed in the ledger, so a plain refresh leaves it
    assert refresh("--all") == "3 day(s) recomputed\n"
    assert summarised() == ledger_truth()
