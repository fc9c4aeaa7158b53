"""The coordinator's HTTP/1.1 client transport (torua.http.wire on httptools, and
torua.coordinator.nodes.connections over it): framing split anywhere, bounds, truncation,
scripted servers, and https with a trustme certificate."""

from __future__ import annotations

import ssl

import pytest
import trio
import trio.testing
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.native_fixture import make_server
from tests.scripted_http import THEN_CLOSE, scripted_server
from torua.coordinator.nodes.connections import NodeConnections
from torua.http.wire import MAX_HEAD, WireError, exchange

PROPERTY = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MAX_BODY = 1000


async def _run(pieces: list[bytes], *, close: bool = True, head_only: bool = False):
    """One exchange against a peer that sends ``pieces`` (the client reading between
    them), then closes unless ``close`` is False; the response or the WireError."""
    client, server = trio.testing.memory_stream_pair()
    outcome: list[object] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:

            async def peer() -> None:
                await server.receive_some(65536)
                try:
                    for piece in pieces:
                        await server.send_all(piece)
                        await trio.testing.wait_all_tasks_blocked()
                    if close:
                        await server.aclose()
                except trio.BrokenResourceError:
                    pass

            nursery.start_soon(peer)
            try:
                outcome.append(
                    await exchange(
                        client, b"GET / HTTP/1.1\r\n\r\n", head_only=head_only, max_body=MAX_BODY
                    )
                )
            except WireError as exc:
                outcome.append(exc)
            await client.aclose()
    return outcome[0]


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


responses = st.tuples(
    st.sampled_from(["length", "chunked", "eof"]),
    st.binary(max_size=200),
    st.booleans(),  # a 100 Continue first
    st.lists(st.integers(1, 50), min_size=1, max_size=5),  # chunk sizes
)


def _encode(kind: str, body: bytes, interim: bool, sizes: list[int]) -> bytes:
    out = b"HTTP/1.1 100 Continue\r\n\r\n" if interim else b""
    out += b"HTTP/1.1 200 OK\r\nX-Torua-Version: 7\r\n"
    if kind == "length":
        return out + b"Content-Length: %d\r\n\r\n" % len(body) + body
    if kind == "eof":
        return out + b"Connection: close\r\n\r\n" + body
    out += b"Transfer-Encoding: chunked\r\n\r\n"
    at, i = 0, 0
    while at < len(body):
        size = sizes[i % len(sizes)]
        out += b"%x;ext=1\r\n%s\r\n" % (len(body[at : at + size]), body[at : at + size])
        at, i = at + size, i + 1
    return out + b"0\r\nTrailer: x\r\n\r\n"


@PROPERTY
@given(response=responses, cuts=st.lists(st.integers(0, 2000), max_size=8))
async def test_responses_split_anywhere_parse_the_same(response, cuts):
    kind, body, interim, sizes = response
    raw = _encode(kind, body, interim, sizes)
    result = await _run(_split(raw, cuts), close=kind == "eof")
    assert not isinstance(result, WireError), result
    assert (result.status, result.body, result.headers["x-torua-version"]) == (200, body, "7")
    assert result.reusable == (kind != "eof")


@PROPERTY
@given(response=responses, at=st.integers(0, 10_000))
async def test_a_response_cut_short_is_an_error_never_a_short_body(response, at):
    kind, body, interim, sizes = response
    raw = _encode(kind, body, interim, sizes)
    cut = at % len(raw)
    result = await _run([raw[:cut]])
    if kind == "eof" and b"\r\n\r\n" in raw[:cut].split(b"Connection: close", 1)[-1][:4]:
        return  # a close-delimited body is complete at any EOF after its head
    if isinstance(result, WireError):
        assert result.started == (cut > 0)
    else:  # only a close-delimited body may end at an EOF
        assert kind == "eof" and raw[:cut].endswith(result.body)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * (MAX_HEAD + 10) + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (MAX_BODY + 1, b"x" * (MAX_BODY + 1))
        + b"0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (MAX_BODY + 1),
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    ],
    ids=["head", "length", "chunked", "eof", "status-line", "bad-length"],
)
async def test_oversized_and_malformed_responses_raise(raw: bytes) -> None:
    result = await _run([raw[i : i + 4096] for i in range(0, len(raw), 4096)], close=False)
    assert isinstance(result, WireError) and result.started


async def test_a_head_answer_is_reusable_and_bytes_after_it_are_not() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    clean = await _run([head[:10], head[10:]], close=False, head_only=True)
    assert (clean.body, clean.reusable) == (b"", True)
    extra = await _run([head + b"stray"], close=False, head_only=True)
    assert (extra.body, extra.reusable) == (b"", False)


# -- over real loopback sockets -------------------------------------------------------


async def test_the_pool_reads_scripted_chunked_eof_interim_and_refuses_oversized() -> None:
    script = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end" + THEN_CLOSE,
        b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ncut" + THEN_CLOSE,
    ]
    seen: list[bytes] = []
    conns = NodeConnections({}, max_body=MAX_BODY)
    with trio.fail_after(10):
        await _scripted(conns, script, seen)
    assert seen.count(b"<connection>") == 3  # reused until the close, then one per failure


async def _scripted(conns: NodeConnections, script: list[bytes | None], seen: list[bytes]):
    async with trio.open_nursery() as nursery:
        port = await scripted_server(nursery, script, seen)
        addr = f"http://127.0.0.1:{port}"
        first = await conns.request(addr, "GET", "/a")
        assert (first.body, first.reusable) == (b"hi", True)
        second = await conns.request(addr, "PUT", "/b", body=b"v")
        assert second.body == b"ok"
        third = await conns.request(addr, "GET", "/c")
        assert (third.body, third.reusable) == (b"to the end", False)
        with pytest.raises(WireError):
            await conns.request(addr, "GET", "/d")
        with pytest.raises(WireError):
            await conns.request(addr, "GET", "/e")
        conns.close()
        nursery.cancel_scope.cancel()


async def test_https_to_a_native_server_with_a_trustme_certificate() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = make_server()
    with trio.fail_after(10):
        await _over_tls(server, server_context, client_context)


async def _over_tls(server, server_context: ssl.SSLContext, client_context: ssl.SSLContext):
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            trio.serve_ssl_over_tcp, server.serve_stream, 0, server_context
        )
        port = listeners[0].transport_listener.socket.getsockname()[1]
        conns = NodeConnections({"X-Test": "1"}, ssl_context=client_context)
        addr = f"https://127.0.0.1:{port}"
        assert conns.handles(addr)
        put = await conns.request(addr, "PUT", "/kv/a", body=b"secret")
        assert put.status == 204
        for _ in range(3):
            got = await conns.request(addr, "GET", "/kv/a")
            assert (got.status, got.body, got.reusable) == (200, b"secret", True)
        assert server.connections == 1  # one TLS connection, kept alive
        untrusting = NodeConnections({}, ssl_context=ssl.create_default_context())
        with pytest.raises(trio.BrokenResourceError):
            await untrusting.request(addr, "GET", "/kv/a")
        conns.close()
        untrusting.close()
        nursery.cancel_scope.cancel()
