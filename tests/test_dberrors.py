"""Which database errors are retried and spooled, which need a human, and which are our bugs."""

import threading

import pytest
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    connection,
    transaction,
)

from orders import dberrors
from orders.ingest import store
from orders.models import Order
from tests.factories import raw_get


def wrapped(django_error, code: int, message: str):
    """A Django database error as the ORM raises it: the driver's error as its cause."""
    error = django_error(code, message)
    error.__cause__ = OperationalError(code, message)
    return error


@pytest.mark.parametrize(
    "code", [2002, 2003, 2006, 2013, 1040, 1047, 1203, 1226, 1205, 1213, 1290, 1836, 1792, 1021, 1114, 4031])
def test_transient_codes(code):
    assert dberrors.classify(wrapped(OperationalError, code, "x")) == dberrors.TRANSIENT


@pytest.mark.parametrize("code", [1044, 1045, 1049, 1142, 1146])
def test_configuration_codes(code):
    assert dberrors.classify(wrapped(OperationalError, code, "x")) == dberrors.CONFIGURATION


@pytest.mark.parametrize(("error_class", "code"), [(DataError, 1406), (ProgrammingError, 1064), (IntegrityError, 1452)])
def test_our_bugs_are_not_database_trouble(error_class, code):
    assert dberrors.classify(wrapped(error_class, code, "x")) is None


def test_closed_driver_connection_is_transient():
    assert dberrors.classify(InterfaceError("(0, '')")) == dberrors.TRANSIENT


def test_sqlite_equivalents():
    assert dberrors.classify(OperationalError("database is locked")) == dberrors.TRANSIENT
    assert dberrors.classify(OperationalError("no such table: orders_order")) == dberrors.CONFIGURATION


def test_description_names_the_code():
    assert dberrors.describe(wrapped(OperationalError, 1205, "Lock wait timeout exceeded")).startswith(
        "MariaDB error 1205 (lock wait timeout)")


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_real_mariadb_deadlock_is_transient():
    """Two transactions that lock the same two orders in opposite order: MariaDB kills one with 1213,
    and the error as the ORM raises it is one the ingest path retries (the codes above are unit-tested
    on hand-made errors; this proves the real driver's error has the shape classify() expects)."""
    first, second = (store(raw_get(uniq_id=uniq_id)).order_id for uniq_id in ("DEADLOCK-1", "DEADLOCK-2"))
    both_hold_one = threading.Barrier(2, timeout=10)
    errors = []

    def lock(mine: int, theirs: int):
        try:
            with transaction.atomic():
                Order.objects.select_for_update().get(pk=mine)
                both_hold_one.wait()
                Order.objects.select_for_update().get(pk=theirs)
        except DatabaseError as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=lock, args=pair) for pair in ((first, second), (second, first))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert [dberrors.error_code(error) for error in errors] == [1213]
    assert dberrors.classify(errors[0]) == dberrors.TRANSIENT
