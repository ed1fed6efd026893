"""`manage.py prune_deliveries`: delete old raw deliveries in small batches (orders are never deleted)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from orders.operations import database_failed, positive_int, require_database
from orders.prune import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, prune_deliveries


class Command(BaseCommand):
    help = (
        "Delete raw deliveries older than --days (default DELIVERY_RETENTION_DAYS) whose postback is stored as "
        "an order, in small batches. Never deletes orders, invalid/error deliveries, deliveries of an order under "
        "a money conflict, or deliveries entered by hand."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=positive_int, default=None,
                            help="age in days (default: DELIVERY_RETENTION_DAYS)")
        parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                            help=f"rows per DELETE (default {DEFAULT_BATCH_SIZE})")
        parser.add_argument("--dry-run", action="store_true", help="count only; delete nothing")

    def handle(self, *args, days, batch_size, dry_run, **options):
        if batch_size > MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size above {MAX_BATCH_SIZE} would hold row locks too long")
        require_database()
        try:
            report = prune_deliveries(days=days or settings.DELIVERY_RETENTION_DAYS, batch_size=batch_size,
                                      dry_run=dry_run)
        except DatabaseError as error:
            raise database_failed(error, "part of the deletions (whatever was deleted stays deleted)") from error
        self.stdout.write(report.render())
