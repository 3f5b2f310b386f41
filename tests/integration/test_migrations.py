"""Alembic migrations build exactly ``trustpay.db.schema.metadata``, on both engines, and
running them again changes nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Boolean, create_engine, inspect, text
from tests.dbs import PostgresFactory

from trustpay.db.migrate import current_head, upgrade
from trustpay.db.schema import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (not the migrated template the other tests copy)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    pg: PostgresFactory = request.getfixturevalue("pg_factory")
    name = f"m_{uuid.uuid4().hex[:12]}"
    pg._admin(f'CREATE DATABASE "{name}"')
    url = pg.url_for(name)
    yield url
    pg.drop(url)


def _literal(sql: str | None) -> str | None:
    """A server default as plain text: without the quotes, parentheses and casts each
    database wraps it in when reflected (SQLite gives back ('') for '')."""
    if sql is None:
        return None
    s = re.sub(r"::[a-z ]+(\([0-9]+\))?$", "", sql.strip())
    while len(s) >= 2 and s[0] + s[-1] in ("()", "''"):
        s = s[1:-1]
    return s


_BOOLEAN = {"0": "false", "f": "false", "false": "false", "1": "true", "t": "true", "true": "true"}


def compare_default(_ctx: Any, _insp_col: Any, meta_col: Any, inspected: str | None, _meta_default: Any,
                    rendered: str | None) -> bool:
    """True when the defaults really differ (PostgreSQL stores the boolean default '0' as false)."""
    a, b = _literal(inspected), _literal(rendered)
    if isinstance(meta_col.type, Boolean) and a is not None and b is not None:
        a, b = _BOOLEAN.get(a.lower(), a), _BOOLEAN.get(b.lower(), b)
    return a != b


def diff(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": compare_default})
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def state(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            tables = sorted(insp.get_table_names())
            return {
                "version": conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all(),
                "tables": tables,
                "columns": {t: [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)]
                            for t in tables},
                "indexes": {t: sorted((i["name"] or "", tuple(i["column_names"])) for i in insp.get_indexes(t))
                            for t in tables},
                "rows": conn.execute(text("SELECT id, offset_ms FROM platform_clock ORDER BY id")).all(),
            }
    finally:
        engine.dispose()


def test_empty_database_really_is_empty(empty_db: str) -> None:
    engine = create_engine(empty_db)
    try:
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
        assert diff(empty_db) != []  # so the comparison below can see a difference
    finally:
        engine.dispose()


def test_migrated_database_matches_the_metadata(empty_db: str) -> None:
    upgrade(empty_db)
    assert diff(empty_db) == []
    s = state(empty_db)
    assert s["version"] == [current_head()]
    assert set(s["tables"]) == set(metadata.tables) | {"alembic_version"}


def test_upgrade_twice_is_a_no_op(empty_db: str) -> None:
    upgrade(empty_db)
    engine = create_engine(empty_db)
    try:
        with engine.begin() as conn:  # data written between the two runs must survive
            conn.execute(text("UPDATE platform_clock SET offset_ms = 1234 WHERE id = 1")
                         if conn.execute(text("SELECT COUNT(*) FROM platform_clock")).scalar_one()
                         else text("INSERT INTO platform_clock (id, offset_ms) VALUES (1, 1234)"))
    finally:
        engine.dispose()
    before = state(empty_db)
    upgrade(empty_db)
    assert state(empty_db) == before
    assert before["rows"] == [(1, 1234)]
    assert diff(empty_db) == []
