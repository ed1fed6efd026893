"""Which database errors are retried and spooled, which need a human, and which are our bugs."""

import pytest
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, ProgrammingError

from orders import dberrors


def wrapped(django_error, code: int, message: str):
    """A Django database error as the ORM raises it: the driver's error as its cause."""
    error = django_error(code, message)
    error.__cause__ = OperationalError(code, message)
    return error


@pytest.mark.parametrize(
    "code", [2002, 2003, 2006, 2013, 1040, 1203, 1226, 1205, 1213, 1290, 1836, 1792, 1021, 1114, 4031])
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
