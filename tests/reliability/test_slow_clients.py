"""Slow and hostile HTTP clients (issue 14.1): idle, trickled headers, half-sent bodies, huge
headers, more connections than the server can hold. Real sockets against uvicorn configured by
shared/serving.py: in this process for the exact timings, and against the intake process."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from shared.serving import HttpSettings
from tests.conftest import Services
from tests.harness import counter_token
from tests.reliability.inprocess import (
    connect,
    get,
    parse,
    probe_app,
    read_until_closed,
    served,
)
from tools.samples import sample_submission

# Short deadlines, so that each test waits about a second for the server to act.
FAST = HttpSettings(
    idle_timeout_s=1,
    header_timeout_s=1.0,
    body_timeout_s=1.0,
    max_header_bytes=16 * 1024,
    max_connections=8,
    fd_reserve=16,
)


@pytest.fixture
def port() -> Iterator[int]:
    with served(probe_app(), FAST) as port:
        yield port


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    with connect(port) as sock:
        raw, waited = read_until_closed(sock)
    assert raw == b""
    assert 0.8 < waited < 3


def test_headers_trickled_byte_by_byte_are_cut_off_with_408(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: test\r\n")
        started = time.monotonic()
        # Always something new, never the end of the headers: the Slowloris pattern.
        try:
            for _ in range(30):
                sock.sendall(b"X")
                time.sleep(0.1)
        except OSError:
            pass  # closed by the server, as it must
        raw, _ = read_until_closed(sock)
        waited = time.monotonic() - started
    answer = parse(raw)
    assert answer.status == 408
    assert answer.problem()["type"].endswith("/request-timeout")
    assert waited < 2.5
    assert get(port, "/readyz").status == 200


def test_a_half_sent_body_is_cut_off_with_408(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(
            b"POST /v1/echo HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"half": '
        )
        raw, waited = read_until_closed(sock)
    assert parse(raw).status == 408
    assert 0.8 < waited < 3


def test_a_body_sent_in_time_is_answered(port: int) -> None:
    body = b'{"whole": "' + b"a" * 1000 + b'"}'
    with connect(port) as sock:
        sock.sendall(
            b"POST /v1/echo HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        for start in range(0, len(body), 200):
            sock.sendall(body[start : start + 200])
            time.sleep(0.1)
        raw, _ = read_until_closed(sock)
    assert parse(raw).status == 200
    assert parse(raw).body == b'{"bytes":%d}' % len(body)


def test_an_idle_keep_alive_connection_is_closed(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: test\r\n\r\n")
        raw, waited = read_until_closed(sock)
    assert parse(raw).status == 200  # answered, kept open, then closed once idle
    assert 0.8 < waited < 3


def test_headers_past_the_cap_get_431_and_smaller_ones_pass(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nX-Big: " + b"a" * 64 * 1024 + b"\r\n\r\n")
        raw, _ = read_until_closed(sock)
    answer = parse(raw)
    assert answer.status == 431
    assert answer.problem()["type"].endswith("/request-header-fields-too-large")
    assert get(port, "/readyz", x_big="a" * 12 * 1024).status == 200


def test_ten_megabytes_of_headers_are_not_read(port: int) -> None:
    with connect(port) as sock:
        sent = 0
        chunk = b"GET /readyz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 65536
        try:
            while sent < 10 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
                chunk = b"a" * 65536
        except OSError:
            pass
        raw, _ = read_until_closed(sock)
    # Closed long before the 10 MB were in (what was sent fits in the sockets' buffers).
    assert sent < 8 * 1024 * 1024
    assert raw == b"" or parse(raw).status == 431
    assert get(port, "/readyz").status == 200


# Deadlines far longer than these tests, so that only the cap closes connections.
PATIENT = FAST.model_copy(update={"header_timeout_s": 5.0, "idle_timeout_s": 5})


def test_at_the_connection_cap_the_longest_idle_connection_makes_room() -> None:
    with served(probe_app(), PATIENT) as port, ExitStack() as stack:
        idle = [stack.enter_context(connect(port)) for _ in range(FAST.max_connections)]
        time.sleep(0.1)
        assert get(port, "/readyz").status == 200
        # The oldest was closed for the newcomer; the others are still open.
        raw, waited = read_until_closed(idle[0])
        assert raw == b""
        assert waited < 0.5
        idle[1].settimeout(0.3)
        with pytest.raises(TimeoutError):
            idle[1].recv(1)


def test_past_the_cap_with_none_idle_a_newcomer_gets_503_then_is_served() -> None:
    with served(probe_app(), PATIENT) as port, ExitStack() as stack:
        for _ in range(FAST.max_connections):
            busy = stack.enter_context(connect(port))
            busy.sendall(b"GET /readyz HTTP/1.1\r\nHost: test\r\n")  # headers never finished
        time.sleep(0.1)
        refused = get(port, "/readyz")
        assert refused.status == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.problem()["type"].endswith("/too-many-connections")
        # Once the stalled ones are cut off (header deadline), newcomers are served again.
        time.sleep(PATIENT.header_timeout_s + 0.5)
        assert get(port, "/readyz").status == 200


# The intake process, served by `motcua serve` (tools/cli.py, through shared/serving.py).


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _submit(url: str) -> httpx.Response:
    unit, body = sample_submission(random.Random(14))
    return httpx.post(f"{url}/v1/dossiers", json=body, headers=counter_token(unit), timeout=10)


@pytest.mark.integration
def test_intake_process_serves_through_idle_and_stalled_connections(services: Services) -> None:
    """More idle connections than the cap (the issue: 1,100 held every descriptor of intake),
    stalled headers and half-sent bodies: intake stays ready and takes submissions."""
    cap = 200
    intake = services.start(
        "intake",
        MOTCUA_HTTP_MAX_CONNECTIONS=str(cap),
        MOTCUA_HTTP_HEADER_TIMEOUT_S="2",
        MOTCUA_HTTP_BODY_TIMEOUT_S="2",
    )
    assert intake.proc is not None
    with ExitStack() as stack:
        for _ in range(1100):
            stack.enter_context(connect(intake.port))
        stalled = []
        for _ in range(10):
            sock = stack.enter_context(connect(intake.port))
            sock.sendall(b"POST /v1/dossiers HTTP/1.1\r\nHost: test\r\n")
            stalled.append(sock)
        for _ in range(10):
            sock = stack.enter_context(connect(intake.port))
            sock.sendall(
                b"POST /v1/dossiers HTTP/1.1\r\nHost: test\r\ncontent-type: application/json\r\n"
                b'content-length: 500\r\n\r\n{"procedure_code": '
            )
            stalled.append(sock)
        assert httpx.get(f"{intake.url}/readyz", timeout=10).status_code == 200
        assert _submit(intake.url).status_code == 201
        # The process holds about the cap, not a descriptor per connection opened.
        assert _open_descriptors(intake.proc.pid) < cap + 256
        for sock in stalled:
            raw, waited = read_until_closed(sock)
            assert parse(raw).status == 408
            assert waited < 5


@pytest.mark.integration
def test_intake_process_refuses_huge_headers_with_431(services: Services) -> None:
    intake = services.start("intake")
    with connect(intake.port) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nX-Big: " + b"a" * 64 * 1024 + b"\r\n\r\n")
        raw, _ = read_until_closed(sock)
    assert parse(raw).status == 431
    assert _submit(intake.url).status_code == 201
