"""How a service's HTTP server treats its connections: timeouts, a header cap and a connection cap.

uvicorn closes an idle keep-alive connection but never one that sent nothing, trickles its
headers or stops half-way through its body, and its httptools parser takes headers of any
size: a few hundred such clients held every file descriptor of intake (issue 14). The protocol
below adds what it lacks, at the connection (an ASGI middleware only sees complete headers):

- headers must be complete within `header_timeout_s` of a request's first byte (of the
  connection's opening for its first request): 408, closed;
- a body must be complete within `body_timeout_s` of its headers: 408 (or closed if answered);
- a request line and headers above `max_header_bytes`: 431, closed;
- above `max_connections` open connections, the longest idle one (between requests, or
  opened and silent) is closed for the new one; with none idle, the new one is answered 503
  problem+json with Retry-After at its request and closed. The cap stays below the process's
  file limit, with `fd_reserve` kept for PostgreSQL, Kafka and files.

Production runs behind an ingress that buffers requests; docs/reliability.md gives its settings.
"""

from __future__ import annotations

import asyncio
import itertools
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import uvicorn
from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.logging import get_logger
from shared.problems import problem_response
from shared.settings import ServiceSettings

log = get_logger(__name__)

CLOSED = Counter(
    "motcua_http_connections_closed_total",
    "Connections the server closed or refused to protect itself, by reason",
    ["reason"],
)
_REASONS = ("idle_evicted", "shed", "header_timeout", "body_timeout", "headers_too_large")
for _reason in _REASONS:
    CLOSED.labels(_reason)
# How long a connection refused at the cap may take to send the request its 503 answers.
_SHED_WAIT_S = 1.0
_MOMENTS = itertools.count()


class HttpSettings(BaseSettings):
    """`MOTCUA_HTTP_*`: how long a client may take, how large its headers, how many connect."""

    model_config = SettingsConfigDict(env_prefix="MOTCUA_HTTP_", extra="ignore", frozen=True)

    # Between requests. Longer than a client's or a proxy's pool keeps a connection (httpx 5 s,
    # ingress-nginx 60 s): shorter, a client reusing a connection the server is closing at that
    # instant gets a reset, not an answer. Idle connections are the first closed at the cap.
    idle_timeout_s: int = Field(default=75, ge=1, le=3600)
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Request line and headers; a counter's request is about 1 KiB, its token 300 bytes.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    max_connections: int = Field(default=4096, ge=1)
    # File descriptors left for the pool, Kafka, logs and reference data files.
    fd_reserve: int = Field(default=256, ge=16)
    # Retry-After of a connection refused at the cap.
    shed_retry_after_s: int = Field(default=2, ge=1, le=3600)
    # Addresses whose X-Forwarded-For names the client (the ingress): rate limits and the
    # failed-authentication throttle key on that client. "*" trusts every peer.
    trusted_proxies: str = "127.0.0.1,::1"


def _answer(status: int, title: str, detail: str, kind: str, **headers: str) -> bytes:
    """A whole HTTP/1.1 answer as problem+json that closes the connection, built once."""
    response = problem_response(status, title, detail, kind=kind)
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    head = [f"HTTP/1.1 {status} {title}\r\n".encode("latin-1")]
    head += [name + b": " + value + b"\r\n" for name, value in response.raw_headers]
    head.append(b"connection: close\r\n\r\n")
    return b"".join(head) + bytes(response.body)


@dataclass(frozen=True, slots=True)
class ConnectionGuard:
    """The limits one server applies, and its refusals, rendered once."""

    max_connections: int
    # Above it a new connection is closed at once: those awaiting their 503 hold descriptors too.
    shed_limit: int
    header_timeout_s: float
    body_timeout_s: float
    max_header_bytes: int
    too_large: bytes
    timed_out: bytes
    unavailable: bytes

    @classmethod
    def of(cls, settings: HttpSettings, max_connections: int) -> ConnectionGuard:
        return cls(
            max_connections=max_connections,
            shed_limit=max_connections + settings.fd_reserve // 2,
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s,
            max_header_bytes=settings.max_header_bytes,
            too_large=_answer(
                431,
                "Request header fields too large",
                f"The request line and headers exceed {settings.max_header_bytes} bytes",
                "request-header-fields-too-large",
            ),
            timed_out=_answer(
                408,
                "Request timeout",
                "The request was not received in time",
                "request-timeout",
            ),
            unavailable=_answer(
                503,
                "Service unavailable",
                "The server has too many connections open: retry later",
                "too-many-connections",
                retry_after=str(settings.shed_retry_after_s),
            ),
        )


class _Refusal(Exception):
    """Raised in a parser callback to stop parsing: the request is answered here, not by the app."""

    def __init__(self, answer: bytes, reason: str) -> None:
        super().__init__(reason)
        self.answer = answer
        self.reason = reason


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines, header cap and connection cap above."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._body_deadline: asyncio.TimerHandle | None = None
        # When nothing began to be asked of the server (opened, or answered), in the order
        # of `_MOMENTS` (the loop's clock has millisecond ties); None: busy.
        self.idle_since: int | None = None
        self._in_head = False
        self._head_bytes = 0
        self._shed = False

    # Connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.guard.max_connections and not self._evict_idle():
            if len(self.connections) > self.guard.shed_limit:
                CLOSED.labels("shed").inc()
                transport.close()
                return
            # Answered at its request (closed before reading it, the client could see a reset
            # instead), which must come at once.
            self._shed = True
            self._head_deadline = self.loop.call_later(_SHED_WAIT_S, self._head_expired)
            return
        self._head_deadline = self.loop.call_later(self.guard.header_timeout_s, self._head_expired)
        self.idle_since = next(_MOMENTS)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._cancel_deadlines()
        self.idle_since = None

    def data_received(self, data: bytes) -> None:
        self.idle_since = None
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return  # no protocol to upgrade to (ws="none"): the request is answered as HTTP
        except httptools.HttpParserError as exc:
            refusal = exc.__context__
            if isinstance(refusal, _Refusal):
                self._refuse(refusal.answer, refusal.reason)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head:
            # Headers still incomplete: all these bytes are the head's (but the tail of a
            # previous pipelined request's body in the same read, counted here too).
            self._head_bytes += len(data)
            if self._head_bytes > self.guard.max_header_bytes:
                self._refuse(self.guard.too_large, "headers_too_large")

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(
                self.guard.header_timeout_s, self._head_expired
            )

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.guard.max_header_bytes:
            raise _Refusal(self.guard.too_large, "headers_too_large")
        if self._shed:
            raise _Refusal(self.guard.unavailable, "shed")
        self._in_head = False
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().on_headers_complete()
        # Cancelled at once by on_message_complete when the request has no body.
        self._body_deadline = self.loop.call_later(self.guard.body_timeout_s, self._body_expired)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:
            self.idle_since = next(_MOMENTS)

    # Deadlines and refusals

    def _head_expired(self) -> None:
        self._head_deadline = None
        if self._in_head:
            self._refuse(self.guard.timed_out, "header_timeout")
        elif not self.transport.is_closing():
            # Opened and silent: nothing to answer.
            CLOSED.labels("header_timeout").inc()
            self.transport.close()

    def _body_expired(self) -> None:
        self._body_deadline = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self._refuse(self.guard.timed_out, "body_timeout")
        elif not self.transport.is_closing():
            CLOSED.labels("body_timeout").inc()
            self.transport.close()

    def _refuse(self, answer: bytes, reason: str) -> None:
        if self.transport.is_closing():
            return
        CLOSED.labels(reason).inc()
        self._cancel_deadlines()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app waiting for the rest of the body learns the client is gone; what it
            # answers then is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                # Half an answer is on the wire (a pipelined request's): no room for ours.
                self.transport.close()
                return
        self.transport.write(answer)
        self.transport.close()

    def _evict_idle(self) -> bool:
        """Close the longest idle connection to make room; False if none is idle."""
        idle = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttp)
            and c is not self
            and c.idle_since is not None
            and not c.transport.is_closing()
        ]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.idle_since or 0)
        CLOSED.labels("idle_evicted").inc()
        victim.transport.close()
        return True

    def _cancel_deadlines(self) -> None:
        for handle in (self._head_deadline, self._body_deadline):
            if handle is not None:
                handle.cancel()
        self._head_deadline = self._body_deadline = None


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedHttp]:
    """The protocol class uvicorn instantiates per connection, bound to this server's limits."""
    return type("GuardedHttp", (GuardedHttp,), {"guard": guard})


def connection_cap(settings: HttpSettings) -> int:
    """The connection cap: `max_connections`, lowered to fit the file limit less the reserve.

    The soft file limit is first raised as far as the hard one allows towards the cap plus the
    reserve (a process starts with 1,024 on most systems, whatever the hard limit)."""
    wanted = settings.max_connections + settings.fd_reserve
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    return max(1, min(settings.max_connections, soft - settings.fd_reserve))


def server_config(
    app: Any,
    settings: ServiceSettings,
    *,
    port: int | None = None,
    http: HttpSettings | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration of a service: its address, the protections above, the
    proxies it trusts, and half of the shutdown time for the requests in flight."""
    http = http or HttpSettings()
    cap = connection_cap(http)
    log.info(
        "http limits",
        max_connections=cap,
        header_timeout_s=http.header_timeout_s,
        body_timeout_s=http.body_timeout_s,
        idle_timeout_s=http.idle_timeout_s,
        max_header_bytes=http.max_header_bytes,
    )
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=port or settings.http_port,
        http=guarded_protocol(ConnectionGuard.of(http, cap)),
        ws="none",
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=http.trusted_proxies,
        timeout_keep_alive=http.idle_timeout_s,
        # Requests in flight get half of the shutdown time; the app's own stop the rest.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s / 2)),
    )
