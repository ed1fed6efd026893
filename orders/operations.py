"""Small pieces the operations commands (check_health, replay_webhook, prune_deliveries, reconcile) share.

Each turns an expected failure (the database does not answer, a date that is not a date) into a
plain CommandError, so that an operator sees one clear line and a non-zero exit, never a traceback.
"""

import argparse
import logging
import sys
from contextlib import contextmanager, redirect_stdout
from datetime import date, datetime, time

from django.core.management.base import CommandError
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from . import alerts, dberrors
from .ingest import discard_connection


@contextmanager
def stdout_reserved_for_output():
    """While a command makes machine-readable output, everything else that would print goes to stderr.

    The service logs to stdout (one line per postback, beside gunicorn's access log), and the
    default console mail backend prints alerts there from a background thread; but a command's stdout
    belongs to whoever parses it: one "spool entry quarantined" line in it would make
    `check_health --json` unreadable exactly when something is wrong. The command writes its own
    output through its OutputWrapper, which keeps the real stdout. Alerts queued meanwhile are sent
    before the context ends.
    """
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values()
                                      if isinstance(item, logging.Logger))]
    moved = [handler for logger in loggers for handler in logger.handlers
             if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout]
    for handler in moved:
        handler.setStream(sys.stderr)
    try:
        with redirect_stdout(sys.stderr):
            yield
            alerts.wait_for_pending()
    finally:
        for handler in moved:
            handler.setStream(sys.stdout)


def require_database() -> None:
    """Raise CommandError unless the database answers a query now."""
    refresh_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        discard_connection()
        raise CommandError(f"the database is unreachable: {dberrors.describe(error)}") from error


def refresh_connection() -> None:
    """Drop a connection that is broken or past CONN_MAX_AGE, so a long run survives MariaDB's
    wait_timeout. Inside a caller's transaction the connection is not ours to replace."""
    if not connection.in_atomic_block:
        close_old_connections()


def database_failed(error: DatabaseError, done: str) -> CommandError:
    """The CommandError for a database that failed part-way; `done` says what was finished."""
    discard_connection()
    return CommandError(f"the database failed ({dberrors.describe(error)}) after {done}; run the command again")


def timestamp_argument(value: str) -> datetime:
    """argparse type for --since/--until: an ISO date or date-time; naive values are in TIME_ZONE."""
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = datetime.combine(day, time.min) if day else None
    except ValueError:
        moment = None
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date: use YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS][+03:00]'"
        )
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def date_argument(value: str) -> date:
    """argparse type for a date, YYYY-MM-DD."""
    try:
        day = parse_date(value)
    except ValueError:
        day = None
    if day is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: use YYYY-MM-DD")
    return day


def positive_int(value: str) -> int:
    """argparse type for ids, days and batch sizes."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return number
