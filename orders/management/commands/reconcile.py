"""`manage.py reconcile`: find the order events a network's own API lists and the ledger lacks, and store
them. The work is in orders.reconcile; this prints each finding as it is found, then the run's figures."""

import argparse
import getpass

from django.core.management.base import BaseCommand, CommandError, no_translations
from django.db import DatabaseError

from orders import reconcile
from orders.operations import database_failed, date_argument, require_database
from partners.registry import PARTNERS


class Command(BaseCommand):
    help = (
        "Read a network's own API for the orders whose status changed in a window of dates, store each order "
        "event the ledger lacks (its postback never arrived), flag money that differs, and report id mismatches "
        "and orders the network does not return. Without --partner, every network with API credentials; "
        "without --since, from the end of the last successful window, one day back. Exits 1 if a run failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--partner", choices=sorted(slug for slug, partner in PARTNERS.items()
                                                        if partner.api_client),
                            help="the network (default: every network whose API credentials are set)")
        parser.add_argument("--since", type=date_argument,
                            help="first day of status changes to read (YYYY-MM-DD, in the network's time zone)")
        parser.add_argument("--until", type=date_argument,
                            help="last day of status changes to read (YYYY-MM-DD; default: today)")
        parser.add_argument("--dry-run", action="store_true",
                            help="print what would change and write nothing (run this first on a real account)")
        # Who started the run, when it is not the system user (the admin's button passes its user).
        parser.add_argument("--started-by", help=argparse.SUPPRESS)

    @no_translations
    def handle(self, *args, **options):
        if options["since"] and options["until"] and options["since"] > options["until"]:
            raise CommandError("--since must not be after --until")
        partners = [options["partner"]] if options["partner"] else reconcile.configured()
        if not partners:
            self.stdout.write("No network has API credentials (EPN_API_CLIENT_ID and EPN_API_CLIENT_SECRET, "
                              "ADMITAD_CLIENT_ID and ADMITAD_CLIENT_SECRET): nothing to reconcile.")
            return
        require_database()
        failures = []
        for slug in partners:
            try:
                summary = reconcile.reconcile(
                    slug, since=options["since"], until=options["until"], dry_run=options["dry_run"],
                    started_by=options["started_by"] or _operator(), say=self.stdout.write)
            except reconcile.ReconcileError as error:
                failures.append(f"{slug}: {error}")
            except DatabaseError as error:
                raise database_failed(error, f"part of the {slug} run (what it stored is kept; run it again)") \
                    from error
            else:
                self.stdout.write(summary.render())
                if summary.error:
                    failures.append(f"{slug}: {summary.error}")
        if failures:
            raise CommandError("; ".join(failures))


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
