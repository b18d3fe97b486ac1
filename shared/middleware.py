"""ASGI middleware of the HTTP services: the body limits every route shares."""

from __future__ import annotations

from typing import Any

from shared.problems import problem_response

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BODY_HEADERS = {
    name.encode(): name for name in ("content-length", "content-type", "transfer-encoding")
}


def _body_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers about the body (ASGI gives names lower-cased), leaving the others undecoded."""
    return {_BODY_HEADERS[k]: v.decode("latin-1") for k, v in raw if k in _BODY_HEADERS}


class BodyLimits:
    """ASGI middleware: 415 unless a body is JSON, 413 past `max_bytes` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = _body_headers(scope["headers"])
        declared = headers.get("content-length")
        if declared in (None, "0") and "transfer-encoding" not in headers:
            # No body (an action such as POST .../result-return): nothing to type-check.
            await self.app(scope, receive, send)
            return
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            response = problem_response(
                415,
                "Unsupported media type",
                "Send the body as application/json",
                kind="unsupported-media-type",
            )
            await response(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        # A chunked body has no declared length: read it all here and count.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        response = problem_response(
            413,
            "Payload too large",
            f"The body exceeds {self.max_bytes} bytes",
            kind="payload-too-large",
        )
        await response(scope, receive, send)
