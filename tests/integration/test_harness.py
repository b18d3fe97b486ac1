"""The test harness stops the broker, the database and the services it started, however pytest
ends: SIGTERM (its teardown runs) or SIGKILL (its guards act)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import motcua_local
import pytest

from tests.harness import REPO

pytestmark = pytest.mark.integration

# A session of its own that starts the platform and a service, says their pids, then waits.
HOLDER = """
import json, os, time
from pathlib import Path

def test_holds_the_platform(platform, services):
    service = services.start("metrics")
    pids = {
        "kafka": platform.kafka.pid,
        "postgres": platform.postgres.pid,
        "metrics": service.proc.pid,
    }
    Path(os.environ["MOTCUA_TEST_PIDS"]).write_text(json.dumps(pids))
    time.sleep(240)
"""


def started(pids_file: Path, proc: subprocess.Popen[bytes], log: Path) -> dict[str, int]:
    deadline = time.monotonic() + 180
    while not pids_file.exists():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the inner session did not start the platform"
        time.sleep(0.2)
    time.sleep(0.2)  # written at once, but let the writer finish
    pids: dict[str, int] = json.loads(pids_file.read_text())
    return pids


def running(pids: dict[str, int]) -> dict[str, int]:
    return {name: pid for name, pid in pids.items() if motcua_local.pid_alive(pid)}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_stopping_pytest_stops_what_it_started(tmp_path: Path, signum: signal.Signals) -> None:
    (tmp_path / "test_holder.py").write_text(HOLDER)
    pids_file, log = tmp_path / "pids.json", tmp_path / "pytest.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "pytest", "-q", "-p", "no:cacheprovider"),
                # The repository's configuration and fixtures, for a test file outside it.
                *("-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO)),
                *("-p", "tests.conftest"),
                str(tmp_path / "test_holder.py"),
            ],
            cwd=REPO,
            env={**os.environ, "MOTCUA_TEST_PIDS": str(pids_file)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    pids: dict[str, int] = {}
    try:
        pids = started(pids_file, proc, log)
        assert running(pids) == pids
        proc.send_signal(signum)
        proc.wait(timeout=120)
        if signum == signal.SIGTERM:
            # Ended by its own teardown: nothing is left the moment it exits.
            assert "Terminated: SIGTERM" in log.read_text()
            assert running(pids) == {}
        else:
            deadline = time.monotonic() + 90
            while running(pids) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert running(pids) == {}, "still running after pytest was killed"
    finally:
        # Whatever happened above, this test leaves nothing running either.
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids.values():
            motcua_local.stop_pid(pid)


def test_a_database_stops_though_another_session_closed_its_parent_directory(
    own_postgres: motcua_local.Postgres,
) -> None:
    # Every pytest session resets /tmp/pytest-of-<user> to 0700 when it starts. Run as root, the
    # cluster runs as the postgres user, whose pg_ctl then could not reach the cluster to stop it.
    closed = [p for p in own_postgres.data_dir.parents if p.name.startswith("pytest-of-")]
    assert closed, own_postgres.data_dir
    for parent in closed:
        parent.chmod(0o700)
    own_postgres.stop()
    assert not motcua_local.port_open(own_postgres.port)
    assert own_postgres.pid is None or not motcua_local.pid_alive(own_postgres.pid)
