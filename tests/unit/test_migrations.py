"""Migrations discovery: numbered files in order, shared DDL included in place, and every
service's outbox notified on its own channel by the shared definition."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.intake import store as intake_store
from services.metrics import store as metrics_store
from services.processing import store as processing_store
from shared.db import migration_files, migration_sql
from shared.outbox import DDL


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_migrations_are_found_in_number_order(tmp_path: Path) -> None:
    found = migration_files(
        write(tmp_path, {"002_b.sql": "", "001_a.sql": "", "010_notes.txt": "not a migration"})
    )
    assert found == [(1, tmp_path / "001_a.sql"), (2, tmp_path / "002_b.sql")]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"001_a.sql": "", "003_c.sql": ""}, "without gaps"),
        ({"002_b.sql": ""}, "without gaps"),
        ({"001_a.sql": "", "1_b.sql": ""}, "NNN_description.sql"),
        ({"001_Add-column.sql": ""}, "NNN_description.sql"),
    ],
)
def test_a_badly_numbered_or_named_migration_is_refused(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        migration_files(write(tmp_path, files))


def test_an_include_is_replaced_by_the_file_it_names_relative_to_the_migration(
    tmp_path: Path,
) -> None:
    write(tmp_path / "shared", {"table.sql": "CREATE TABLE t (id int);\n"})
    migrations = write(
        tmp_path / "service" / "migrations",
        {"001_t.sql": "-- why\n\\ir ../../shared/table.sql\nCREATE INDEX t_id ON t (id);\n"},
    )
    assert migration_sql(migrations / "001_t.sql") == (
        "-- why\nCREATE TABLE t (id int);\n\nCREATE INDEX t_id ON t (id);\n"
    )


def test_a_migration_without_include_is_applied_as_written(tmp_path: Path) -> None:
    text = "-- mentions \\ir in a comment only\nSELECT '\\ir x.sql';\n"
    migrations = write(tmp_path, {"001_a.sql": text})
    assert migration_sql(migrations / "001_a.sql") == text


def test_includes_do_not_nest(tmp_path: Path) -> None:
    write(tmp_path / "shared", {"a.sql": "\\ir b.sql\n", "b.sql": "SELECT 1;"})
    migrations = write(tmp_path / "m", {"001_a.sql": "\\ir ../shared/a.sql\n"})
    with pytest.raises(ValueError, match="includes another file"):
        migration_sql(migrations / "001_a.sql")


def test_only_sql_files_are_included(tmp_path: Path) -> None:
    write(tmp_path, {"secret.txt": "x"})
    migrations = write(tmp_path / "m", {"001_a.sql": "\\ir ../secret.txt\n"})
    with pytest.raises(ValueError, match=r"not a \.sql file"):
        migration_sql(migrations / "001_a.sql")


def test_a_missing_include_fails_the_migration(tmp_path: Path) -> None:
    migrations = write(tmp_path, {"001_a.sql": "\\ir ../gone.sql\n"})
    with pytest.raises(FileNotFoundError):
        migration_sql(migrations / "001_a.sql")


@pytest.mark.parametrize("store", [intake_store, processing_store])
def test_each_outbox_ends_defined_by_the_shared_ddl(store: object) -> None:
    """The latest migration touching a service's outbox applies shared/outbox_v1.sql, which
    notifies the channel of the service's own schema."""
    directory: Path = getattr(store, "MIGRATIONS")  # noqa: B009 - one test for both stores
    touching = [p for _, p in migration_files(directory) if "outbox" in migration_sql(p)]
    assert DDL.read_text() in migration_sql(touching[-1])


def test_every_service_has_well_formed_migrations_and_metrics_no_outbox() -> None:
    for store in (intake_store, processing_store, metrics_store):
        for _, path in migration_files(store.MIGRATIONS):
            migration_sql(path)
    assert not any(
        "outbox" in migration_sql(p) for _, p in migration_files(metrics_store.MIGRATIONS)
    )


def test_the_applied_outbox_ddl_never_changes() -> None:
    # Deployed databases ran this file through a migration and never run it again: an edit would
    # reach only new databases. Change the outbox with a new file and new migrations instead.
    digest = hashlib.sha256(DDL.read_bytes()).hexdigest()
    assert digest == "f1d76834e5e61124b17646eacf4fa768c331e3402a525fbc5bb635f5b1580743"
