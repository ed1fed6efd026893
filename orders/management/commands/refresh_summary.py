"""`manage.py refresh_summary`: bring the overview's daily summary up to date, or recompute all of it."""

from django.core.management.base import BaseCommand
from django.db import DatabaseError

from orders import summary
from orders.operations import database_failed, require_database


class Command(BaseCommand):
    help = (
        "Recompute the days of the overview's daily summary whose orders changed since the last refresh "
        "(check_health does this every minute), or with --all every day: after restoring a backup, or once "
        "after installing the overview on a large ledger, so that the first page view does not do it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", dest="everything", help="recompute every day")

    def handle(self, *args, everything, **options):
        require_database()
        try:
            report = summary.refresh(everything=everything)
        except DatabaseError as error:
            raise database_failed(error, "no change (a refresh is one transaction)") from error
        self.stdout.write(f"{report.days} day(s) recomputed")
