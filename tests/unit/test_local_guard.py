"""The local platform's guard stops what it watches once its starter is gone, and only that."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import motcua_local
import pytest


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_a_closed_pipe_stops_what_is_still_watched(sleeper: subprocess.Popen[bytes]) -> None:
    motcua_local.guard(iter([f"watch pid {sleeper.pid}\n"]))
    assert not motcua_local.pid_alive(sleeper.pid)


@pytest.mark.parametrize("said", ["done", "forget pid {pid}"])
def test_a_release_or_a_forgotten_pid_stops_nothing(
    sleeper: subprocess.Popen[bytes], said: str
) -> None:
    motcua_local.guard(iter([f"watch pid {sleeper.pid}\n", said.format(pid=sleeper.pid) + "\n"]))
    assert sleeper.poll() is None


def test_the_guard_process_acts_when_its_starter_drops_it(
    sleeper: subprocess.Popen[bytes],
) -> None:
    guard = motcua_local.Guard()
    guard.watch("pid", str(sleeper.pid))
    guard._proc.kill()  # the guard itself gone: telling it more must not fail its starter
    guard._proc.wait()
    guard.forget("pid", str(sleeper.pid))
    guard.release()
    released = motcua_local.Guard()
    released.watch("pid", str(sleeper.pid))
    released.release()
    assert sleeper.poll() is None
