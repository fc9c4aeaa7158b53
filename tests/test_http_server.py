"""The shared hypercorn server survives an app whose response is cancelled mid-send.

A cancel scope around ``send`` (a leader's term guard, a forward given up when
the leader changes) can land after hypercorn has told h11 a response started
but before hypercorn noted it: hypercorn then answers 500 on a response already
under way, h11 raises, and that error took the whole server (the process) down.
"""

from __future__ import annotations

from typing import Any

import httpx
import trio

from torua.http.server import serve_app


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/cut":
        with trio.CancelScope() as cut:
            cut.cancel()  # as if the term ended, or the leader changed, right then
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"never"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_a_response_cancelled_while_it_starts_does_not_stop_the_server() -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: serve_app(
                _app, "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(3):
                try:
                    await client.get(url + "/cut")
                except httpx.HTTPError:
                    pass  # a cut response is fine; a dead server is not
                assert (await client.get(url + "/fine")).content == b"ok"
        stop.set()
