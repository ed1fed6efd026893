"""`manage.py check_health`: the cron check. Exit codes follow Nagios: 0 ok, 1 warning, 2 critical."""

import json
import sys
from contextlib import nullcontext

from django.core.management.base import BaseCommand

from orders import health
from orders.operations import stdout_reserved_for_output


class Command(BaseCommand):
    help = (
        "Check the database, migrations, spool (draining it when the database answers), the last postback "
        "of each partner, free disk for the spool and the mail configuration. Exit 0 ok, 1 warning, "
        "2 critical; emails the admins on problems (throttled)."
    )

    # The system checks are one of the checks (see orders.health.check_configuration).
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--quiet", action="store_true", help="print only problems (nothing when all is well)")
        parser.add_argument("--no-email", action="store_true", help="do not email the admins about problems")

    def handle(self, *args, **options):
        with stdout_reserved_for_output() if options["json"] else nullcontext():
            report = health.run_checks()
            if not options["no_email"]:
                health.notify(report)
        quiet = options["quiet"]
        if options["json"]:
            if report.problems or not quiet:
                self.stdout.write(json.dumps(report.as_json(only_problems=quiet), ensure_ascii=False, indent=2))
        elif output := report.render(only_problems=quiet):
            self.stdout.write(output)
        if report.level:
            sys.exit(report.level)
