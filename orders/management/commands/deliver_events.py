"""`manage.py deliver_events`: send the outbox to the site (orders.sender), as a service or once."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from orders import dberrors
from orders.operations import discard_connection, refresh_connection
from orders.sender import PassReport, Sender, exclusive

log = logging.getLogger("epnhook.sender")

# Seconds between looks at the outbox when nothing was due, and after the database failed.
IDLE_SECONDS = 1.0
DATABASE_RETRY_SECONDS = 5.0


class Command(BaseCommand):
    help = (
        "Send the outbound events (OUTBOUND_URL) to the site, signed, in order per order, with retries. Runs until "
        "stopped (SIGTERM ends it after the event in flight); --once sends what is due now and exits. One sender "
        "runs at a time: a second one waits for the first to stop."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true",
                            help="send every event that may go now (retrying those whose next delay is 0), then exit")

    def handle(self, *args, once, **options):
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if not settings.OUTBOUND_URL:
            if once:
                raise CommandError("OUTBOUND_URL is not set: there is nowhere to send events (see the README)")
            # The service runs in every install (docker compose, the systemd target); without an endpoint no
            # event is written, and it waits to be stopped rather than fail and be restarted in a loop.
            log.info("OUTBOUND_URL is not set: no events to send")
            stop.wait()
            return
        while True:
            with exclusive() as mine:
                if mine:
                    return self._run(Sender(), stop, once)
            if once:
                raise CommandError("another deliver_events is running; it sends the events")
            log.info("another deliver_events holds the lock; waiting for it to stop")
            if stop.wait(DATABASE_RETRY_SECONDS):
                return

    def _run(self, sender: Sender, stop: threading.Event, once: bool) -> None:
        log.info("sending events to %s", settings.OUTBOUND_URL)
        total = PassReport()
        while not stop.is_set():
            refresh_connection()
            try:
                report = sender.run_pass(stop.is_set)
            except DatabaseError as error:
                discard_connection()
                if once:
                    raise CommandError(f"the database failed: {dberrors.describe(error)}; run it again") from error
                log.warning("the database failed: %s; retrying in %g s", dberrors.describe(error),
                            DATABASE_RETRY_SECONDS)
                stop.wait(DATABASE_RETRY_SECONDS)
                continue
            total.delivered += report.delivered
            total.failed_attempts += report.failed_attempts
            if report.attempted == 0:
                if once:
                    break
                stop.wait(IDLE_SECONDS)
        if once:
            self.stdout.write(f"delivered {total.delivered}, failed attempts {total.failed_attempts}")
