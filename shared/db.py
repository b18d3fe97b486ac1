"""PostgreSQL plumbing: a pool per service, numbered .sql migrations under an advisory lock.

A migration may include DDL kept elsewhere (the outbox's, shared by every service) with psql's
`\\ir path` (a path relative to the migration's directory): the file is applied in its place, in
the migration's transaction and schema."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.logging import get_logger

log = get_logger(__name__)

# What a store method receives: a plain connection or one borrowed from the pool.
Connection = asyncpg.Connection | PoolConnectionProxy
_MIGRATION = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
# psql's "include relative" meta-command, alone on its line; the only one a migration may use.
_INCLUDE = re.compile(r"^[ \t]*\\ir[ \t]+(\S+)[ \t]*$", re.MULTILINE)


def _lock_key(schema: str) -> int:
    # A stable 63-bit key per schema, so two services migrating at once never wait on each other.
    return int.from_bytes(hashlib.sha256(f"motcua:{schema}".encode()).digest()[:8], "big") >> 1


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    """The numbered migrations of a directory, in order; refuses a badly named or missing one."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION.fullmatch(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name} must be named NNN_description.sql")
        found.append((int(match.group(1)), path))
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"migrations in {directory} must be numbered 001, 002, ... without gaps")
    return found


def migration_sql(path: Path) -> str:
    """The statements of a migration file, its `\\ir` lines replaced by the files they name."""
    text = path.read_text()

    def included(match: re.Match[str]) -> str:
        target = (path.parent / match.group(1)).resolve()
        if target.suffix != ".sql":
            raise ValueError(f"{path.name} includes {match.group(1)}: not a .sql file")
        sql = target.read_text()
        # One level: what a migration applies stays readable from the migration itself.
        if _INCLUDE.search(sql):
            raise ValueError(f"{target.name}, included by {path.name}, includes another file")
        return sql

    return _INCLUDE.sub(included, text)


async def migrate(conn: asyncpg.Connection, schema: str, directory: Path) -> list[int]:
    """Apply the pending migrations of one service's schema; replicas starting together are safe."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]
            for r in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        }
        for number, path in migration_files(directory):
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(migration_sql(path))
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version) VALUES ($1)', number
                )
            applied_now.append(number)
            log.info("migration applied", schema=schema, version=number, file=path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
    return applied_now


async def create_pool(dsn: str, schema: str, size: int) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in the service's own schema."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=size,
        server_settings={"search_path": f"{schema},public", "application_name": f"motcua-{schema}"},
    )
    assert pool is not None
    return pool


async def prepare(dsn: str, schema: str, migrations: Path, size: int) -> asyncpg.Pool:
    """Migrate, then open the pool: what every service does at start."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, schema, migrations)
    finally:
        await conn.close()
    return await create_pool(dsn, schema, size)
