"""Statements built once, executed many times with parameters.

Building a Core statement per call (``select(t).where(t.c.id == x)``) costs
100-400 µs here: coercing every operand into a bound parameter and then
generating the cache key that finds the compiled SQL. A statement built once
with named ``bindparam``\\s keeps its cache key, so a call costs only the
execution (~40 µs for a select, ~80 µs for an insert). Results keep
SQLAlchemy's type handling (timestamps, JSON, booleans), unlike ``db/raw.py``.

Parameter names: a WHERE column ``c`` is bound as ``w_c``; an UPDATE's SET
columns and an INSERT's columns are the plain column names of the values
passed at execution (SQLAlchemy renders exactly the keys it is given).

The hottest statements go further (:func:`row`, :func:`mapping`, :func:`run`,
:func:`insert`): SQLAlchemy still compiles them — once per statement, dialect
and set of parameter names — and still converts every parameter and result
value with its own type processors, but the execution itself goes straight to
the driver connection of the same transaction. That skips SQLAlchemy's
per-execution context, cursor wrapping and result objects: ~30 µs of a
select's ~40 µs, ~70 µs of an insert's ~85 µs, on statements that run a few
dozen times per transfer.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, Insert, Select, Table, Update, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from trustpay.db.raw import Raw


def where_params(**values: Any) -> dict[str, Any]:
    """``w_``-prefixed parameters for the WHERE of a statement made here."""
    return {f"w_{k}": v for k, v in values.items()}


def _where(table: Table, cols: tuple[str, ...]) -> list[Any]:
    return [table.c[c] == bindparam(f"w_{c}") for c in cols]


@cache
def select_where(table: Table, *cols: str, columns: tuple[str, ...] = (), for_update: bool = False) -> Select[Any]:
    """``SELECT columns (default all) FROM table WHERE col = :w_col AND …``."""
    picked = [table.c[c] for c in columns] if columns else [table]
    q = select(*picked).where(*_where(table, cols))
    return q.with_for_update() if for_update else q


@cache
def update_where(table: Table, *cols: str) -> Update:
    """``UPDATE table SET <keys given> WHERE col = :w_col AND …``."""
    return update(table).where(*_where(table, cols))


@cache
def insert_into(table: Table) -> Insert:
    return table.insert()


def dialect_insert(dialect: str, table: Table) -> Any:
    """The dialect's ``INSERT`` (with ``on_conflict_…``; SQLite and PostgreSQL spell it alike)."""
    mod: Any = postgresql if dialect == "postgresql" else sqlite
    return mod.insert(table)


@cache
def _insert_or_ignore(dialect: str, table: Table, conflict_on: tuple[str, ...]) -> Insert:
    stmt: Insert = (
        dialect_insert(dialect, table)
        .on_conflict_do_nothing(index_elements=list(conflict_on))
        .returning(table.c[conflict_on[0]])
    )
    return stmt


def upsert(dialect: str, table: Table, conflict_on: tuple[str, ...], replace: tuple[str, ...]) -> Insert:
    """``INSERT … ON CONFLICT (conflict_on) DO UPDATE`` setting ``replace`` to the new row's values."""
    stmt = dialect_insert(dialect, table)
    done: Insert = stmt.on_conflict_do_update(index_elements=list(conflict_on),
                                              set_={c: stmt.excluded[c] for c in replace})
    return done


def insert_or_ignore_stmt(conn: Connection, table: Table, conflict_on: tuple[str, ...]) -> Insert:
    return _insert_or_ignore(conn.dialect.name, table, conflict_on)


def first(conn: Connection, table: Table, where: Mapping[str, Any], *, columns: tuple[str, ...] = (),
          for_update: bool = False) -> Any | None:
    """The first row with ``col = value`` for each item of ``where`` (None if none)."""
    stmt = select_where(table, *where, columns=columns, for_update=for_update)
    return row(conn, stmt, where_params(**where))


def change(conn: Connection, table: Table, where: Mapping[str, Any], values: Mapping[str, Any]) -> int:
    """``UPDATE … SET values WHERE where``; the number of rows changed."""
    return run(conn, update_where(table, *where), {**where_params(**where), **values})


# ------------------------------------------------------------------ on the driver
class _Plan(NamedTuple):
    sql: str
    positional: tuple[str, ...] | None  # qmark order (SQLite); None: named (psycopg)
    # The qmark parameters out of the values dict, as one C call (itemgetter).
    ordered: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameters whose type converts them
    # Result columns whose type converts them (index, processor); the others are
    # kept as the driver gives them.
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    row: Any  # result rows: a named tuple of the result columns (attribute, index and ``_mapping``)
    # Values the statement carries itself (``LIMIT 1``, ``coalesce(…, 0)``, ``status = 'pending'``).
    constants: Mapping[str, Any]


# Keyed by the statement object itself: pass only statements made once (module
# constants, or the cached builders above), or this grows with every call.
_plans: dict[tuple[Any, str, frozenset[str]], _Plan] = {}


def _plan(conn: Connection, stmt: Any, names: frozenset[str]) -> _Plan:
    dialect = conn.dialect
    key = (stmt, dialect.name, names)
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = _make_plan(stmt, dialect, names)
    return plan


def _make_plan(stmt: Any, dialect: Any, names: frozenset[str]) -> _Plan:
    compiled = stmt.compile(dialect=dialect, column_keys=sorted(n for n in names if not n.startswith("w_")))
    sql = compiled.string
    if "POSTCOMPILE" in sql:
        raise TypeError("a statement with expanding parameters cannot run on the driver")
    binds = []
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    # What the statement says it returns: a SELECT's columns, a DML's RETURNING
    # (none for a plain INSERT, even where PostgreSQL's compiler adds RETURNING
    # of the key by itself: nobody asked for it).
    columns = list(stmt.exported_columns)
    processors = (c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    results = tuple((i, p) for i, p in enumerate(processors) if p is not None)
    # An unlabelled expression (``count(*)``) has no key: it is reached by index.
    row = _row_type(tuple(c.key if isinstance(c.key, str) else f"_{i}" for i, c in enumerate(columns)))
    positional = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    ordered = None if positional is None else _ordered(positional)
    # Anonymous binds also appear under an internal "%(id param)s" key; the name
    # the SQL uses is the other one.
    constants = {name: bind.value for name, bind in compiled.binds.items()
                 if not bind.required and bind.callable is None and not name.startswith("%(")}
    return _Plan(sql, positional, ordered, tuple(binds), results, row, constants)


def _ordered(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if not names:
        return lambda _values: ()
    if len(names) == 1:  # itemgetter of one name returns the value itself, not a tuple
        name = names[0]
        return lambda values: (values[name],)
    return itemgetter(*names)


@cache
def _row_type(keys: tuple[str, ...]) -> Any:
    base: Any = namedtuple("Row", keys, rename=True)  # type: ignore[misc]

    class Row(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(keys, self, strict=True))

    return Row


def _bound(conn: Connection, stmt: Any, params: Mapping[str, Any]) -> tuple[_Plan, dict[str, Any]]:
    """The statement's plan and its parameters as the driver takes them."""
    plan = _plan(conn, stmt, frozenset(params))
    values = {**plan.constants, **params} if plan.constants else dict(params)
    for name, process in plan.binds:
        if name in values:
            values[name] = process(values[name])
    return plan, values


def _execute(conn: Connection, stmt: Any, params: Mapping[str, Any]) -> tuple[_Plan, Any]:
    plan, values = _bound(conn, stmt, params)
    raw = Raw.of(conn)
    if plan.ordered is not None:  # sqlite3: a cursor per statement, closed once read
        return plan, raw.dbapi.execute(plan.sql, plan.ordered(values))
    # psycopg: one of Raw's kept cursors, as every statement here is read to the
    # end (one row, or a row count) before the next one runs.
    return plan, raw.pg_execute(plan.sql, values)


def _done(plan: _Plan, cursor: Any) -> None:
    if plan.positional is not None:
        cursor.close()


def row(conn: Connection, stmt: Any, params: Mapping[str, Any]) -> Any | None:
    """The first result row of a statement made here (attributes, indexes, ``_mapping``)."""
    plan, cursor = _execute(conn, stmt, params)
    values = cursor.fetchone()
    _done(plan, cursor)
    if values is None:
        return None
    if plan.results:
        values = list(values)
        for i, process in plan.results:
            values[i] = process(values[i])
    return plan.row._make(values)


def one(conn: Connection, stmt: Any, params: Mapping[str, Any]) -> Any:
    """The result row of a statement that always returns one (an aggregate)."""
    found = row(conn, stmt, params)
    if found is None:
        raise LookupError("the statement returned no row")
    return found


def mapping(conn: Connection, stmt: Any, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first result row as a dict of column name to value."""
    found = row(conn, stmt, params)
    return None if found is None else found._mapping


def run(conn: Connection, stmt: Any, params: Mapping[str, Any]) -> int:
    """Execute an UPDATE/INSERT/DELETE made here; the number of rows it changed."""
    plan, cursor = _execute(conn, stmt, params)
    count = int(cursor.rowcount)
    _done(plan, cursor)
    return count


def insert(conn: Connection, table: Table, values: Mapping[str, Any]) -> None:
    """``INSERT INTO table (<keys of values>) VALUES (…)``: nothing is read back, so on
    PostgreSQL it may be deferred to go with the next statement (``db/raw.py``)."""
    plan, bound = _bound(conn, insert_into(table), values)
    if plan.ordered is not None:
        Raw.of(conn).dbapi.execute(plan.sql, plan.ordered(bound)).close()
    else:
        Raw.of(conn).pg_later(plan.sql, bound)
