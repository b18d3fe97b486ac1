"""A small app served by uvicorn in a thread of the test process as the services are served,
and raw sockets to talk to a server the way a slow or hostile client does."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import motcua_local
import uvicorn
from fastapi import FastAPI, Header, Request

from shared.bearer import bearer_caller
from shared.middleware import BodyLimits
from shared.problems import install_problem_handlers
from shared.serving import HttpSettings, server_config
from shared.settings import DEV_TOKEN_KEY, ServiceSettings


def probe_app(max_body_bytes: int = 64 * 1024) -> FastAPI:
    """Routes shaped like the services': a counter's read, a JSON body, a probe."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/v1/whoami")
    async def whoami(authorization: Annotated[str | None, Header()] = None) -> dict[str, str]:
        caller = bearer_caller(authorization, [DEV_TOKEN_KEY], "counter")
        return {"unit": caller.unit, "subject": caller.subject}

    @app.post("/v1/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/readyz")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    app.add_middleware(BodyLimits, max_bytes=max_body_bytes)
    return app


@contextmanager
def served(app: Any, http: HttpSettings) -> Iterator[int]:
    """The app on a free loopback port (yielded) until the block ends."""
    port = motcua_local.free_port()
    server = uvicorn.Server(server_config(app, ServiceSettings(), port=port, http=http))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """What the server sent until it closed the connection, and how long that took."""
    started = time.monotonic()
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - started


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/problem+json"
        document: dict[str, Any] = json.loads(self.body)
        return document


def parse(raw: bytes) -> Answer:
    """The first HTTP/1.1 answer in `raw` (with a Content-Length)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    return Answer(int(lines[0].split(" ")[1]), headers, rest[:length])


def get(port: int, path: str, **headers: str) -> Answer:
    """One complete GET on a fresh connection that asks to be closed after it."""
    lines = [f"GET {path} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    with connect(port) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        raw, _ = read_until_closed(sock)
    return parse(raw)
