"""A follower's forwarding gives up on a leader that never answers once the election moves on."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import trio

from torua.ha.forward import Forwarder
from torua.http.raw import RawResponder


async def test_forwarding_ends_when_the_leader_changes() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"v", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "PUT",
        "path": "/data/k",
        "raw_path": b"/data/k",
        "query_string": b"",
        "headers": [(b"content-length", b"1")],
    }
    forwarder = Forwarder("http://127.0.0.1:1", RawResponder(lambda: None), max_body=1024)
    changed, request_in = trio.Event(), trio.Event()

    async def silent(stream: trio.SocketStream) -> None:
        """A frozen leader: accepts the connection, reads the request, never answers."""
        async with stream:
            while await stream.receive_some():
                request_in.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(
            partial(
                forwarder,
                f"http://127.0.0.1:{port}",
                scope,
                receive,
                send,
                leader_changed=changed,
            )
        )
        with trio.fail_after(5):
            await request_in.wait()  # the request is out and the "leader" sits on it
        assert sent == []
        changed.set()  # a new leader is elected
        with trio.fail_after(5):
            while not sent:  # noqa: ASYNC110 (the forwarder's answer is the event)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    await forwarder.aclose()
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"])["error"] == "no_leader"
