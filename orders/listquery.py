"""The admin lists' queries at millions of rows: which index each one reads, and how long it may run.

Each list shows its rows newest first, 100 at a time, under any combination of its filters. MariaDB
answers that fast only when it reads an index that yields the matching rows already in that order and
stops after a page: an index that starts with the filtered columns and goes on with the time. Left to
itself, the optimizer often picks something else for two or more filters: an index_merge intersection of
two single-column ranges (which reads every row of both, then sorts them), or the index of the most
frequent value. So the list names the index (`with_index`), chosen from the filters present
(`choose_index`), and the optimizer only decides how to read it.

Whatever the plan, a query of a list may meet more rows than it can read in a page view (a search
matching half the ledger, totals over a year). `time_limit` makes the server stop each such query after
ADMIN_QUERY_TIMEOUT seconds (MariaDB's max_statement_time, per statement), and `timed_out` recognises the
error, so that the page can say so instead of failing with a 500. SQLite has no such limit, nor index
hints: there, both are no-ops.
"""

import re
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models.sql.datastructures import BaseTable

from .dberrors import error_code

# MariaDB's ER_STATEMENT_TIMEOUT: "Query execution was interrupted (max_statement_time exceeded)".
STATEMENT_TIMEOUT = 1969


class HintedTable(BaseTable):
    """The FROM clause's table with `FORCE INDEX (...)` after it, on MariaDB only."""

    def __init__(self, table: BaseTable, indexes: Sequence[str]):
        super().__init__(table.table_name, table.table_alias)
        self.indexes = tuple(indexes)

    def as_sql(self, compiler, connection):
        sql, params = super().as_sql(compiler, connection)
        if connection.vendor != "mysql" or not self.indexes:
            return sql, params
        names = ", ".join(connection.ops.quote_name(name) for name in self.indexes)
        return f"{sql} FORCE INDEX ({names})", params

    @property
    def identity(self):
        return (*super().identity, self.indexes)


def with_index(queryset, indexes: Iterable[str]):
    """`queryset`, reading its model's table through one of `indexes` (FORCE INDEX: the optimizer picks
    among them, or several at once for an OR, and reads the table itself only if none of them can serve
    the query at all). Subqueries and joins are left alone."""
    queryset = queryset.all()
    query = queryset.query
    alias = query.get_initial_alias()
    query.alias_map[alias] = HintedTable(query.alias_map[alias], list(indexes))
    return queryset


def equality_columns(queryset) -> set[str]:
    """The columns that `queryset`'s WHERE clause pins to one value each (`column = value`, ANDed at its
    top level), each as its name and as "name=value": what a list's filters chose, whatever their query
    parameters are called."""
    columns = set()
    where = queryset.query.where
    if where.connector != "AND" or where.negated:
        return columns
    for child in where.children:
        target = getattr(getattr(child, "lhs", None), "target", None)
        if getattr(child, "lookup_name", None) == "exact" and target is not None and child.rhs is not None:
            columns.update((target.column, f"{target.column}={child.rhs}"))
    return columns


def choose_index(filtered: set[str], candidates: Sequence[tuple[str, tuple[str, ...]]]) -> str | None:
    """The first of `candidates` (an index's name, and the columns it starts with before its time
    column, each as a name or "name=value" for an index worth reading for that value only) whose
    columns are all `filtered` by equality: it yields the matching rows newest first, the other filters
    checked on each row it reads. So the candidates go from the filter whose values are rarest (fewest
    rows read per page) to the commonest. None if none fits; an empty name leaves the choice to the
    optimizer (a filter whose own index is not time-ordered but narrow, such as a foreign key)."""
    for name, columns in candidates:
        if set(columns) <= filtered:
            return name or None
    return None


LIMITED = re.compile(r"SET STATEMENT max_statement_time=([0-9.e-]+) FOR (.*)", re.S)


def _limit(seconds: float):
    def limited(execute, sql, params, many, context):
        if already := LIMITED.fullmatch(sql):  # an enclosing block's limit: the shorter one applies
            limit, sql = min(seconds, float(already[1])), already[2]
        else:
            limit = seconds
        if sql.lstrip()[:6].upper() == "SELECT":
            sql = f"SET STATEMENT max_statement_time={limit:g} FOR {sql}"
        return execute(sql, params, many, context)

    return limited


@contextmanager
def time_limit(seconds: float | None = None, using: str = "default"):
    """Within the block, each SELECT sent on `using` runs under ADMIN_QUERY_TIMEOUT, or `seconds` if
    shorter (on MariaDB; ADMIN_QUERY_TIMEOUT 0 means no limit). Blocks nest; the shortest limit applies.

    SET STATEMENT applies to the one statement it prefixes, so nothing outlives the block: not on this
    connection, and not on a pooled one that the next request reuses.
    """
    connection = connections[using]
    if connection.vendor != "mysql" or not settings.ADMIN_QUERY_TIMEOUT:
        yield
        return
    with connection.execute_wrapper(_limit(min(seconds or settings.ADMIN_QUERY_TIMEOUT,
                                               settings.ADMIN_QUERY_TIMEOUT))):
        yield


def timed_out(error: BaseException) -> bool:
    """Whether `error` is a query that the server stopped at its time limit."""
    return isinstance(error, DatabaseError) and error_code(error) == STATEMENT_TIMEOUT
