"""A single-row INSERT for the write path, lighter than Model.save().

Model.save() builds and compiles its INSERT anew for every row and sends the pre_save/post_save
signals; profiling the webhook (docs/PERFORMANCE.md) found it the largest cost of a postback.
`insert()` writes exactly the values the ORM would write: every field's own pre_save() (defaults,
auto_now) and get_db_prep_save() (Decimal, time zone, JSON, bytes, addresses), with a statement
built once per model and database vendor. It sends no signals: nothing in this project listens to
them for Order or Delivery.
"""

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

_statements: dict[tuple[str, type[Model]], tuple[str, list]] = {}


def insert(obj: Model) -> None:
    """INSERT `obj` as a new row on the default database and set its primary key.

    Unlike save(), it does not check related objects: save an object's foreign key target first.

    Raises IntegrityError when a constraint refuses the row. On MariaDB and SQLite (the only
    databases settings.py accepts) that undoes the statement alone, so the caller's transaction
    stays usable without a savepoint.
    """
    # The thread's connection itself, not the `django.db.connection` proxy, which would look it up
    # again on every attribute each field reads.
    connection = connections[DEFAULT_DB_ALIAS]
    model = type(obj)
    key = (connection.vendor, model)
    if key not in _statements:
        _statements[key] = _statement(model, connection)
    sql, fields = _statements[key]
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        obj.pk = connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column)
    obj._state.adding = False
    obj._state.db = connection.alias


def _statement(model: type[Model], connection) -> tuple[str, list]:
    """The INSERT of every concrete column but the auto-increment key, and the fields in its order."""
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})", fields
