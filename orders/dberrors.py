"""Which database errors are worth retrying, and what to tell the admins about each kind."""

from django.db import DatabaseError, InterfaceError

TRANSIENT = "transient"
CONFIGURATION = "configuration"

# MariaDB error codes that go away on their own: the server restarts, a lock is released, a
# connection slot frees up, an operator makes the disk or the server writable again, a Galera node
# rejoins its cluster.
TRANSIENT_CODES = {
    1021: "disk full",
    1030: "storage engine error",
    1040: "too many connections",
    # A Galera node still joining the cluster, or cut off from its majority: another node takes writes.
    1047: "cluster node not ready",
    1053: "server shutdown in progress",
    1114: "table is full",
    1203: "too many connections for the user",
    1205: "lock wait timeout",
    1213: "deadlock",
    1226: "user connection limit reached",
    1290: "server is read-only",
    1792: "read-only transaction",
    1836: "server is read-only",
    2002: "cannot connect (socket)",
    2003: "cannot connect (refused or unreachable)",
    2006: "server has gone away",
    2013: "connection lost during query",
    4031: "connection closed by the server (idle timeout)",
}
# Errors that will not heal by waiting: somebody has to fix the configuration.
CONFIGURATION_CODES = {
    1044: "access denied to the database",
    1045: "access denied (wrong user or password)",
    1049: "unknown database",
    1142: "command denied to the user",
    1146: "table does not exist (migrations not applied?)",
}

ALERTS = {
    TRANSIENT: (
        "Database unavailable: postbacks are being spooled",
        "The database did not answer postbacks. Each one is written to the local spool and answered "
        "SPOOL_ACK_STATUS (503 by default); the spool is stored automatically once the database answers "
        "again (the next stored postback or /health probe starts it).",
    ),
    CONFIGURATION: (
        "Database configuration error: postbacks are being spooled",
        "The database refused the service: check DATABASE_URL (host, user, password, database name), "
        "the user's grants, and that migrations have been applied (manage.py migrate). Postbacks are "
        "kept in the spool meanwhile and are stored once this is fixed.",
    ),
}


def error_code(error: BaseException) -> int | None:
    """The MariaDB error number behind a Django database error, if any."""
    cause = error.__cause__ or error
    code = cause.args[0] if cause.args else None
    return code if isinstance(code, int) else None


def classify(error: DatabaseError) -> str | None:
    """TRANSIENT, CONFIGURATION, or None for an error that is a bug of ours (bad SQL, bad data)."""
    code = error_code(error)
    if code in TRANSIENT_CODES:
        return TRANSIENT
    if code in CONFIGURATION_CODES:
        return CONFIGURATION
    if isinstance(error, InterfaceError):
        # The driver's connection object is closed or unusable: reconnecting fixes it.
        return TRANSIENT
    message = str(error).lower()
    if "database is locked" in message or "disk i/o error" in message:
        return TRANSIENT  # SQLite's equivalents of a lock wait and a full or failing disk
    if "no such table" in message or "unable to open database" in message:
        return CONFIGURATION
    return None


def describe(error: BaseException) -> str:
    code = error_code(error)
    known = TRANSIENT_CODES.get(code) or CONFIGURATION_CODES.get(code)
    prefix = f"MariaDB error {code} ({known})" if known else type(error).__name__
    return f"{prefix}: {error}"
