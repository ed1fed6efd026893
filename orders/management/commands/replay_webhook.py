"""`manage.py replay_webhook`: run stored deliveries again, enter a postback by hand, or drain the spool.

The work is in orders.replay (shared with the admin's replay action, and so are its words, printed
here in English whatever LANGUAGE_CODE says) and orders.spooldrain.
"""

import getpass

from django.core.management.base import BaseCommand, CommandError, no_translations
from django.db import DatabaseError

from orders import replay, spool, spooldrain
from orders.models import Delivery
from orders.operations import database_failed, positive_int, require_database, timestamp_argument
from partners import snapshot
from partners.base import OrderStatus
from partners.registry import find_partner, partner_choices


class Command(BaseCommand):
    help = (
        "Replay stored deliveries through the current parser (by id, --outcome, --since/--until, --partner), "
        "enter one postback by hand (--partner with --query), or store the spool (--spool). Idempotent: "
        "replaying twice never creates a second order. Exits 1 if anything failed, or if the postback "
        "entered by hand is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=positive_int, metavar="ID", help="delivery ids to replay")
        parser.add_argument("--outcome", choices=[Delivery.Outcome.INVALID, Delivery.Outcome.ERROR],
                            help="only deliveries with this outcome")
        parser.add_argument("--since", type=timestamp_argument,
                            help="only deliveries received at or after this time (YYYY-MM-DD[ HH:MM])")
        parser.add_argument("--until", type=timestamp_argument,
                            help="only deliveries received before this time (YYYY-MM-DD[ HH:MM])")
        parser.add_argument("--partner", help="only this network's deliveries: the slug of a built-in network or "
                                              "of one configured in the admin")
        parser.add_argument("--query", help="with --partner: store this postback query string as a manual delivery")
        parser.add_argument("--implied-status", choices=OrderStatus.values, default="",
                            help="with --query: the status the URL it was sent to implies, for a network that "
                                 "calls one URL per event (such as ActionPay)")
        parser.add_argument("--spool", action="store_true", help="store the postbacks waiting in the spool")
        parser.add_argument("--dry-run", action="store_true", help="show what would change and write nothing")

    @no_translations
    def handle(self, *args, **options):
        ids = options["ids"]
        selecting = ids or any(options[name] for name in ("outcome", "since", "until"))
        if options["spool"] and (selecting or options["partner"] or options["query"]):
            raise CommandError("--spool works alone: it stores every postback waiting in the spool")
        if options["query"] is not None:
            if selecting:
                raise CommandError("--query enters one new postback; it cannot be combined with ids or filters")
            if not options["partner"]:
                raise CommandError("--query needs --partner: whose postback is it?")
            if not options["query"].strip():
                raise CommandError("--query is empty")
        elif options["implied_status"]:
            raise CommandError("--implied-status goes with --query: a stored delivery keeps the status its URL implied")
        elif not (options["spool"] or selecting or options["partner"]):
            raise CommandError("say what to replay: delivery ids, --outcome, --since/--until or --partner "
                               "(or --query with --partner, or --spool)")
        if options["since"] and options["until"] and options["since"] >= options["until"]:
            raise CommandError("--since must be earlier than --until")

        require_database()
        snapshot.refresh()  # the configured networks as they are described now
        # Checked here, not as argparse choices: the configured networks are known from the database.
        if options["partner"] and find_partner(options["partner"]) is None:
            known = ", ".join(slug for slug, _name in partner_choices())
            raise CommandError(f"--partner: no network {options['partner']!r} (known: {known})")
        try:
            if options["spool"]:
                self.drain_spool(options["dry_run"])
            elif options["query"] is not None:
                self.enter_manual(options["partner"], options["query"], options["dry_run"], options["implied_status"])
            else:
                self.replay_selection(ids, options)
        except DatabaseError as error:
            raise database_failed(error, "part of the run (replaying again is safe)") from error

    def replay_selection(self, ids, options) -> None:
        if ids and (missing := replay.missing_ids(ids)):
            raise CommandError(f"no delivery with id {', '.join(map(str, missing))}; nothing was replayed")
        deliveries = replay.select_deliveries(
            ids=ids, outcome=options["outcome"], since=options["since"], until=options["until"],
            partner=options["partner"],
        )
        summary = replay.replay_selected(deliveries, dry_run=options["dry_run"])
        for line in summary.lines:
            self.stdout.write(line.text)
        self.stdout.write(summary.render())
        if summary.error:
            raise CommandError(f"the database failed ({summary.error}) after {summary.processed} "
                               "deliveries; run the command again (replaying is idempotent)")
        if summary.failed:
            raise CommandError(f"{summary.failed} delivery(ies) failed; see the lines marked 'failed' above")

    def enter_manual(self, partner: str, query: str, dry_run: bool, implied_status: str) -> None:
        """One postback, one line; a refusal is an error with its reason, so that a script notices."""
        result = replay.enter_manual(partner, query, entered_by=_operator(), dry_run=dry_run,
                                     implied_status=implied_status)
        if result.outcome == Delivery.Outcome.INVALID:
            where = f" ({result.field})" if result.field else ""
            if dry_run:
                raise CommandError(f"the postback would be refused{where}: {result.error}")
            raise CommandError(f"the postback is refused{where}: {result.error}; it is kept as invalid delivery "
                               f"#{result.delivery_id}, to replay after a fix")
        if result.outcome == replay.FAILED:
            raise CommandError(f"storing the postback failed: {result.error}")
        self.stdout.write(replay.describe(result) + (" (dry run: nothing was written)" if dry_run else ""))

    def drain_spool(self, dry_run: bool) -> None:
        if quarantined := spool.quarantined_count():
            self.stderr.write(f"{quarantined} unreadable entr(ies) in {spool.quarantine_dir()} need a look by hand")
        if dry_run:
            self.stdout.write(f"{spool.backlog()} postback(s) waiting in the spool would be stored "
                              "(dry run: nothing was written)")
            return
        report = spooldrain.drain()
        if report.busy:
            raise CommandError("another process is draining the spool right now; run again in a minute")
        self.stdout.write(
            f"stored {report.stored} ({', '.join(f'{k} {v}' for k, v in sorted(report.outcomes.items())) or '-'}), "
            f"already stored {report.already_stored}, quarantined {report.quarantined}, "
            f"remaining {report.remaining}"
        )
        if report.error:
            raise CommandError(f"the database failed while draining ({report.error}); "
                               f"{report.remaining} postback(s) remain in the spool; run again")


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
