"""The whole suite's sweep for national ID and tax numbers in clear (issue 14).

While the suite runs, a ledger keeps what it cannot find again afterwards: every ID-like number the
tests typed into a request to a service, every error body a service answered, every `/metrics`
page a service served before it stopped, the log file of every service process, what the command
line printed, and what the tests' own brokers and databases held before they were stopped. After
the last test, `tests/security/test_suite_sweep.py` reads the shared broker's every topic and the
shared PostgreSQL's every table of every database, and asserts that none of it holds an ID in clear.

A number is "in clear" where `shared.pii` would hide it (an ID-like run of digits) and it is one the
tests typed or a valid one (a CCCD the intake would accept, a tax code whose check digit matches),
or, anywhere, where it is digit for digit one the tests typed, even glued to letters. A test that
writes an ID in clear on purpose (a raw record on a topic, to see the dead letter masked) says so
with `LEDGER.plant(place, number)`: that number is then allowed in that place only.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.ids import personal_id_problem, tax_code_problem
from shared.kafka import admin_client
from shared.pii import id_spans

# Canonical UUIDs (dossier and event ids) hold digit runs that are nobody's ID.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RUN = re.compile(r"[0-9]+(?:[ .\-][0-9]+)*")
_GROUP = re.compile(r"[0-9]+")
_LONGEST = 13  # a tax code with its branch
_TODAY = datetime.now(UTC).date()


def digits_of(text: str) -> str:
    return "".join(_GROUP.findall(text))


def masked(number: str) -> str:
    """How a finding is reported: the sweep must not print what it looks for."""
    return number[:3] + "*" * (len(number) - 3)


def valid_id(number: str) -> bool:
    """Whether `number` (digits only) is a national ID or a tax code the intake would accept."""
    if len(number) == 12:
        return personal_id_problem(number, _TODAY) is None
    if len(number) == 10:
        return tax_code_problem(number) is None
    if len(number) == 13:
        return tax_code_problem(f"{number[:10]}-{number[10:]}") is None
    return False


def ids_in_clear(text: str, known: frozenset[str] | set[str]) -> set[str]:
    """The national ID and tax numbers `text` holds in clear (digits only)."""
    text = _UUID.sub(" ", text)
    found = set()
    for start, end in id_spans(text):
        number = digits_of(text[start:end])
        if number in known or valid_id(number):
            found.add(number)
    if known:
        # Also a typed number glued to letters ("CCCD079203001234"), which no mask looks for.
        for run in _RUN.finditer(text):
            groups = _GROUP.findall(run.group())
            for i in range(len(groups)):
                number = ""
                for group in groups[i:]:
                    number += group
                    if len(number) > _LONGEST:
                        break
                    if number in known:
                        found.add(number)
    return found


def typed_numbers(value: Any) -> Iterator[str]:
    """The ID-like numbers in the strings of a JSON value (numbers are amounts, not IDs)."""
    if isinstance(value, str):
        for start, end in id_spans(value):
            yield digits_of(value[start:end])
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from typed_numbers(key)
            yield from typed_numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from typed_numbers(item)


@dataclass
class Ledger:
    """What the suite's services were told and said, for the sweep after the last test."""

    known: set[str] = field(default_factory=set)
    logs: dict[Path, str] = field(default_factory=dict)
    planted: set[tuple[str, str]] = field(default_factory=set)
    findings: dict[str, set[str]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    # host:port of every service process the tests started: whose answers are swept (a test's
    # own stand-in app or Prometheus answers what it likes).
    services: set[str] = field(default_factory=set)

    def count(self, kind: str, n: int = 1) -> None:
        self.seen[kind] = self.seen.get(kind, 0) + n

    def typed(self, raw: bytes, query: bytes = b"") -> None:
        """A request's body and query as a test sent them to a service."""
        for _name, value in parse_qsl(query.decode("utf-8", errors="replace")):
            self.known.update(typed_numbers(value))
        if not raw:
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        self.known.update(typed_numbers(body))

    def typed_files(self, *paths: str | Path) -> None:
        """Files given to the command line (an import's source): what the test typed there."""
        for path in map(Path, paths):
            if path.is_file():
                self.typed(path.read_bytes())

    def said(self, kind: str, where: str, text: str) -> None:
        """Text of one kind found somewhere, checked at once: an answer is checked with the
        numbers the request that caused it typed already known."""
        self.check(where, text)
        self.count(kind)

    def started(self, where: str, address: str, log: Path) -> None:
        """A service process at `address` (host:port), writing its log to `log`."""
        self.services.add(address)
        self.logs[log] = where

    def plant(self, place: str, number: str) -> None:
        """A test writes `number` in clear on purpose where `place` (a topic, a table) starts."""
        self.planted.add((place, digits_of(number)))

    def check(self, where: str, text: str) -> None:
        for number in ids_in_clear(text, self.known):
            if not any(where.startswith(p) and number == n for p, n in self.planted):
                self.findings.setdefault(where, set()).add(number)


LEDGER = Ledger()


def sweep_files(files: dict[Path, str]) -> None:
    """Check every line of the files that still exist (logs)."""
    for path, where in files.items():
        if not path.exists():
            continue
        with path.open(encoding="utf-8", errors="replace") as lines:
            for n, line in enumerate(lines, 1):
                LEDGER.check(f"{where} line {n}", line)
        LEDGER.count("log files")


async def sweep_servers(bootstrap: str | None, postgres_dsn: str | None) -> None:
    """Check every record of every topic and every row of every table of these servers."""
    if bootstrap is not None:
        async for where, text in topic_records(bootstrap):
            LEDGER.said("topic records", where, text)
    if postgres_dsn is not None:
        async for where, text in table_rows(postgres_dsn):
            LEDGER.said("table rows", where, text)


def sweep_before_stopping(bootstrap: str | None, postgres_dsn: str | None) -> None:
    """`sweep_servers` for a test's own server, from its fixture's teardown: in a thread with its
    own event loop, so as not to disturb the loop the async tests share."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, sweep_servers(bootstrap, postgres_dsn)).result()


async def topic_records(bootstrap: str, prefix: str = "") -> AsyncIterator[tuple[str, str]]:
    """Every record of every topic on the broker whose name starts with `prefix` (key, value and
    headers), by where it is."""
    async with admin_client(bootstrap) as admin:
        names = [
            t for t in await admin.list_topics() if t.startswith(prefix) and not t.startswith("__")
        ]
        described = await admin.describe_topics(names) if names else []
    partitions = [
        TopicPartition(topic["topic"], p["partition"])
        for topic in described
        for p in topic["partitions"]
    ]
    if not partitions:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for r in records:
                    headers = " ".join(f"{k}={_text(v)}" for k, v in r.headers)
                    yield (
                        f"topic {r.topic}@{r.partition}:{r.offset}",
                        f"{_text(r.key)} {_text(r.value)} {headers}",
                    )
    finally:
        await consumer.stop()


async def table_rows(
    dsn: str, databases: Sequence[str] | None = None
) -> AsyncIterator[tuple[str, str]]:
    """Every row of every table of these databases of a PostgreSQL server (all of them by
    default), by where it is."""
    if databases is None:
        conn = await asyncpg.connect(dsn)
        try:
            databases = [
                r["datname"]
                for r in await conn.fetch(
                    "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn"
                )
            ]
        finally:
            await conn.close()
    for database in databases:
        conn = await asyncpg.connect(dsn, database=database)
        try:
            tables = await conn.fetch(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
            for schema, table in tables:
                where = f"table {database}.{schema}.{table}"
                async with conn.transaction():
                    query = f'SELECT t::text FROM "{schema}"."{table}" t'
                    async for row in conn.cursor(query, prefetch=2000):
                        yield where, row[0]
        finally:
            await conn.close()


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)
