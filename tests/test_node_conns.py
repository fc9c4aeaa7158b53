"""The coordinator's raw HTTP/1.1 client (torua.http.wire, torua.coordinator.nodes.connections)
against scripted loopback servers: framing, reuse, stale connections, headers."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from torua.coordinator.nodes.client import NodeClient, NodeUnreachable
from torua.coordinator.nodes.connections import NodeConnections
from torua.http.wire import WireError, exchange

from .scripted_http import scripted_server

# -- framing (torua.http.wire) over an in-memory stream -------------------------------


async def _answer(raw: bytes, *, head_only: bool = False) -> tuple[object, bytes]:
    """Run one exchange against a peer that sends ``raw`` (in small pieces), then EOF
    unless the response is complete; returns the response and what the client sent."""
    client, server = trio.testing.memory_stream_pair()
    sent = bytearray()

    async def peer() -> None:
        sent.extend(await server.receive_some(65536))
        for i in range(0, len(raw), 7):  # in pieces, to exercise every partial read
            await server.send_all(raw[i : i + 7])
        await server.aclose()

    failed: WireError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(peer)
        try:
            response = await exchange(
                client, b"GET / HTTP/1.1\r\n\r\n", head_only=head_only, max_body=100
            )
        except WireError as exc:  # raised outside the nursery, not in an ExceptionGroup
            failed = exc
            nursery.cancel_scope.cancel()
    if failed is not None:
        raise failed
    return response, bytes(sent)


async def test_content_length_body_and_headers() -> None:
    response, sent = await _answer(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Torua-Version: 7\r\n\r\nhello"
    )
    assert sent == b"GET / HTTP/1.1\r\n\r\n"
    assert (response.status, response.body, response.reusable) == (200, b"hello", True)
    assert response.headers["x-torua-version"] == "7"


async def test_chunked_body_with_extension_and_trailer() -> None:
    response, _ = await _answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    assert (response.body, response.reusable) == (b"abc0123456789abcdef", True)


async def test_connection_close_and_eof_bodies_are_not_reused() -> None:
    closing, _ = await _answer(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    )
    assert (closing.body, closing.reusable) == (b"ok", False)
    to_eof, _ = await _answer(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    assert (to_eof.body, to_eof.reusable) == (b"until the end", False)


async def test_an_interim_100_continue_is_skipped() -> None:
    response, _ = await _answer(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx"
    )
    assert (response.status, response.body, response.reusable) == (201, b"x", True)


async def test_no_body_for_204_and_head() -> None:
    no_content, _ = await _answer(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert (no_content.status, no_content.body, no_content.reusable) == (204, b"", True)
    head, _ = await _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", head_only=True)
    assert (head.body, head.reusable) == (b"", True)


@pytest.mark.parametrize(
    ("raw", "started"),
    [
        (b"", False),  # closed before answering: the server may never have seen it
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", True),  # over max_body
        (b"SMTP ready\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", True),
    ],
)
async def test_broken_responses_raise(raw: bytes, started: bool) -> None:
    with pytest.raises(WireError) as caught:
        await _answer(raw)
    assert caught.value.started is started


# -- the pool (torua.coordinator.nodes.connections) against loopback servers ------------------


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def test_pool_reuses_one_connection_and_sends_pool_and_call_headers() -> None:
    log: list[bytes] = []
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, [OK, OK, OK], log)
        conns = NodeConnections({"X-Torua-Coordinator": "c1", "X-Torua-Epoch": "4"})
        addr = f"127.0.0.1:{port}"
        for _ in range(3):
            reply = await conns.request(
                addr, "PUT", "/a%2Fb", body=b"xyz", headers=b"X-Torua-Version: 9\r\n"
            )
            assert (reply.status, reply.body) == (200, b"ok")
        conns.close()
        nursery.cancel_scope.cancel()
    assert log.count(b"<connection>") == 1
    requests = [r for r in log if r != b"<connection>"]
    assert all(r.startswith(b"PUT /a%2Fb HTTP/1.1\r\nHost: 127.0.0.1:") for r in requests)
    assert all(b"X-Torua-Epoch: 4\r\n" in r and b"X-Torua-Version: 9\r\n" in r for r in requests)
    assert all(r.endswith(b"content-length: 3\r\n\r\nxyz") for r in requests)


async def test_a_closed_kept_connection_is_retried_only_when_idempotent() -> None:
    log: list[bytes] = []
    async with trio.open_nursery() as nursery:
        # the second request finds its kept connection closed by the server
        port = await scripted_server(nursery, [OK, None, OK, OK, None], log)
        conns = NodeConnections({})
        addr = f"http://127.0.0.1:{port}"
        assert (await conns.request(addr, "GET", "/x")).status == 200
        assert (await conns.request(addr, "GET", "/x")).status == 200  # resent, fresh
        assert (await conns.request(addr, "POST", "/y", body=b"{}")).status == 200
        with pytest.raises(WireError):  # a POST is not resent
            await conns.request(addr, "POST", "/y", body=b"{}")
        conns.close()
        nursery.cancel_scope.cancel()
    assert log.count(b"<connection>") == 2


async def test_node_client_maps_failures_and_deadlines_to_unreachable() -> None:
    async with trio.open_nursery() as nursery:

        async def silent(stream: trio.SocketStream) -> None:
            await trio.sleep_forever()

        listeners = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with NodeConnections({}) as pool:
            nodes = NodeClient(pool)
            with pytest.raises(NodeUnreachable, match="in time"):
                await nodes.request("GET", f"127.0.0.1:{port}", "/health", deadline=0.2)
            assert not pool._nodes[f"127.0.0.1:{port}"].busy  # the socket was closed
        nursery.cancel_scope.cancel()
    with pytest.raises(NodeUnreachable):
        async with NodeConnections({}) as pool:
            await NodeClient(pool).request("GET", "127.0.0.1:1", "/health")
