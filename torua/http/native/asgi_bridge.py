"""Run an ASGI app for one request of the native server.

Every route the server does not answer natively (the control plane,
OpenAPI, the dashboard, metrics, the event stream) reaches the Quart app this
way, on the same port. The app sees a standard HTTP scope; ``receive`` streams
the body and then waits for the client to leave (``http.disconnect``, which
ends an event stream whose reader has gone); ``send`` writes one response,
in a single write when the whole body comes at once.
"""

from __future__ import annotations

import logging
from typing import Any

from torua.http.native.exchange import Exchange, send_error
from torua.http.native.parser import ProtocolError, RequestReader

__all__ = ["run_asgi"]

log = logging.getLogger(__name__)

_ASGI = {"version": "3.0", "spec_version": "2.3"}


async def run_asgi(
    app: Any,
    exchange: Exchange,
    reader: RequestReader,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
) -> None:
    head = exchange.head
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": _ASGI,
        "http_version": head.http_version,
        "method": head.method,
        "scheme": "http",
        "path": head.path,
        "raw_path": head.raw_path,
        "query_string": head.query,
        "root_path": "",
        "headers": head.headers,
        "client": client,
        "server": server,
        "extensions": {},
    }
    failure: ProtocolError | None = None
    status = 0
    headers: list[tuple[bytes, bytes]] = []
    has_length = False

    body_ended = False

    async def receive() -> dict[str, Any]:
        nonlocal failure, body_ended
        if not body_ended and failure is None:
            try:
                chunk = await exchange.read_chunk()
            except ProtocolError as exc:
                failure = exc
                exchange.keep_alive = False
                return {"type": "http.disconnect"}
            body_ended = chunk is None
            return {"type": "http.request", "body": chunk or b"", "more_body": not body_ended}
        if exchange.response_done:
            return {"type": "http.disconnect"}
        # The client has gone once it closed and, as far as it can tell us, was
        # not just half-closing after its request: a response is under way (an
        # event stream whose reader left) or could not be written.
        await reader.wait_closed()
        await exchange.wait_responding()
        exchange.keep_alive = False
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers, has_length
        kind = message["type"]
        if exchange.response_done or exchange.broken:
            return
        if kind == "http.response.start":
            status = message["status"]
            headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", ())]
            has_length = any(k == b"content-length" for k, _ in headers)
        elif kind == "http.response.body":
            if not status:
                raise RuntimeError("http.response.body before http.response.start")
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if not exchange.response_started:
                if not more:
                    if not has_length:
                        headers.append((b"content-length", str(len(body)).encode()))
                    await exchange.respond(status, headers, body)
                    return
                await exchange.start(status, headers, has_length, body)
                return
            await exchange.stream(body, more)

    try:
        await app(scope, receive, send)
    except Exception:
        log.exception("unhandled error on %s %s", head.method, head.path)
        if not exchange.response_started:
            exchange.keep_alive = False
            await send_error(exchange, 500, "internal", "internal error; see the server log")
            return
    if failure is not None and not exchange.response_started:
        await send_error(exchange, failure.status, failure.code, failure.message)
    elif not exchange.response_started:
        log.error("%s %s: the app sent no response", head.method, head.path)
        await send_error(exchange, 500, "internal", "internal error; see the server log")
    elif not exchange.response_done:
        exchange.keep_alive = False  # a cut-off stream: the client must not wait for more
