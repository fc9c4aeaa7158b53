"""The native HTTP/1.1 server against request streams, valid and hostile.

Every stream ends with the client closing its side, so a server that waits
for something that never comes shows up as a test timeout, not a pass.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _all_tasks
from tests.native_fixture import MAX_VALUE, KvRoute, converse, make_app, make_server
from torua.http.native import NativeServer, ServerLimits

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def put(key: str, body: bytes, *, chunked: bool = False, expect: bool = False) -> bytes:
    head = f"PUT /kv/{key} HTTP/1.1\r\nHost: t\r\n".encode()
    if expect:
        head += b"Expect: 100-continue\r\n"
    if chunked:
        framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in _parts(body) if part)
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _parts(body: bytes) -> list[bytes]:
    return [body[i : i + 7] for i in range(0, len(body), 7)]


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def echo(body: bytes) -> bytes:
    return b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


# One request of a valid stream, with the response it must get.
requests = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(["a", "b", "c%20d"]),
        st.binary(max_size=40),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.just("get"), st.sampled_from(["a", "b", "c%20d"])),
    st.tuples(st.just("echo"), st.binary(max_size=60)),
    st.tuples(st.just("hello")),
    st.tuples(st.just("stream")),
)


def build(ops: list[tuple]) -> tuple[bytes, list[tuple[int, bytes | None]]]:
    """The request bytes and the expected (status, body) of each response."""
    values: dict[str, bytes] = {}
    out = b""
    expected: list[tuple[int, bytes | None]] = []
    for op in ops:
        if op[0] == "put":
            _, key, body, chunked, expect = op
            out += put(key, body, chunked=chunked, expect=expect)
            values[key] = body
            expected.append((204, b""))
        elif op[0] == "get":
            out += get(f"/kv/{op[1]}")
            value = values.get(op[1])
            expected.append((200, value) if value is not None else (400, None))
        elif op[0] == "echo":
            out += echo(op[1])
            expected.append((200, op[1]))
        elif op[0] == "hello":
            out += get("/hello")
            expected.append((200, b"hello"))
        else:
            out += get("/stream")
            expected.append((200, b"part 0\npart 1\npart 2\n"))
    return out, expected


@PROPERTY
@given(ops=st.lists(requests, min_size=1, max_size=6), cuts=st.lists(st.integers(0, 10_000)))
async def test_valid_streams_split_anywhere_get_every_answer(ops: list[tuple], cuts: list[int]):
    stream, expected = build(ops)
    result = await converse(make_server(), split(stream, cuts), expect=len(expected))
    assert result.error is None
    got = [(r.status, r.body) for r in result.responses]
    assert len(got) == len(expected)
    for (status, body), (want_status, want_body) in zip(got, expected, strict=True):
        assert status == want_status
        if want_body is not None:
            assert body == want_body


async def test_a_pipelined_stream_split_at_every_byte():
    ops = [("put", "a", b"x" * 20, True, True), ("get", "a"), ("echo", b"yz"), ("stream",)]
    stream, expected = build(ops)
    pieces = [stream[i : i + 1] for i in range(len(stream))]
    result = await converse(make_server(), pieces, expect=len(expected))
    assert [(r.status, r.body) for r in result.responses] == expected


def mutate(stream: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(stream)
    for position, replacement in edits:
        at = position % (len(data) + 1)
        data[at : at + len(replacement)] = replacement
    return bytes(data)


@PROPERTY
@given(
    ops=st.lists(requests, min_size=1, max_size=4),
    edits=st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.sampled_from(
                [b"\x00", b"\r\n", b" ", b"\n\n", b"\xff", b":", b"GARBAGE", b"-1", b"\r\n\r\n"]
            )
            | st.binary(min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=4,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=5),
)
async def test_malformed_streams_get_a_4xx_never_a_hang_or_500(ops, edits, cuts):
    stream = mutate(build(ops)[0], edits)
    result = await converse(make_server(), split(stream, cuts))
    for response in result.responses:
        assert response.status < 500, response


@PROPERTY
@given(
    kind=st.sampled_from(["url", "header", "headers", "value", "content-length", "chunked"]),
    size=st.integers(1, 3),
    cuts=st.lists(st.integers(0, 100_000), max_size=4),
)
async def test_oversized_requests_are_refused_in_the_json_shape(kind, size, cuts):
    limits = make_server().limits
    big = size * 30_000
    if kind == "url":
        stream = get("/kv/" + "k" * (limits.max_url + size))
        want = 414
    elif kind == "header":
        stream = b"GET /hello HTTP/1.1\r\nX-Big: " + b"v" * big + b"\r\n\r\n"
        want = 431
    elif kind == "headers":
        fields = b"".join(b"X-%d: 1\r\n" % i for i in range(limits.max_headers + size))
        stream = b"GET /hello HTTP/1.1\r\n" + fields + b"\r\n"
        want = 431
    elif kind == "value":
        stream = put("a", b"v" * (MAX_VALUE + size))
        want = 413
    elif kind == "content-length":
        stream = b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (limits.max_body + size)
        want = 413
    else:
        stream = put("a", b"v" * (limits.max_body + size), chunked=True)
        want = 413
    result = await converse(make_server(), split(stream, cuts))
    assert [r.status for r in result.responses] == [want]
    body = json.loads(result.responses[0].body)
    assert set(body) == {"error", "message"} and body["message"]


async def test_a_handler_bug_is_a_500_and_the_connection_carries_on():
    result = await converse(make_server(), [get("/kv/boom") + get("/hello")], expect=2)
    assert [r.status for r in result.responses] == [500, 200]
    assert json.loads(result.responses[0].body)["error"] == "internal"


async def test_expect_continue_is_answered_before_the_body_is_sent():
    server = make_server()
    client, server_side = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve_stream, server_side)
        await client.send_all(
            b"PUT /kv/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        with trio.fail_after(5):
            interim = await client.receive_some(1000)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send_all(b"abc")
        with trio.fail_after(5):
            final = await client.receive_some(1000)
        assert final.startswith(b"HTTP/1.1 204")
        await client.send_eof()


async def test_an_uninvited_oversized_body_is_refused_without_waiting_for_it():
    # The client waits for 100 Continue; the server answers 413 and closes instead.
    stream = b"PUT /kv/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n"
    result = await converse(make_server(), [stream])
    assert [r.status for r in result.responses] == [413]
    assert result.responses[0].headers[b"connection"] == b"close"


async def _raw(server: NativeServer, request: bytes, *, until: bytes | None = None) -> bytes:
    """What the server sends for ``request``: until it closes, or until ``until`` ends it."""
    client, server_side = trio.testing.memory_stream_pair()
    received = b""
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve_stream, server_side)
            await client.send_all(request)
            while data := await client.receive_some(1000):
                received += data
                if until is not None and received.endswith(until):
                    break
            await client.aclose()
    return received


async def test_http_1_0_gets_a_streamed_response_delimited_by_the_close():
    received = await _raw(make_server(), b"GET /stream HTTP/1.0\r\n\r\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head
    assert b"transfer-encoding" not in head
    assert body == b"part 0\npart 1\npart 2\n"


async def test_a_streamed_response_is_chunked_on_http_1_1():
    received = await _raw(make_server(), get("/stream"), until=b"0\r\n\r\n")
    assert b"transfer-encoding: chunked" in received
    assert received.endswith(b"7\r\npart 2\n\r\n0\r\n\r\n")


async def test_head_sends_no_body():
    request = b"HEAD /hello HTTP/1.1\r\n\r\n" + get("/hello")
    received = await _raw(make_server(), request, until=b"hello")
    assert received.count(b"HTTP/1.1 200") == 2
    assert received.count(b"hello") == 1


# Real sockets: timeouts and shutdown --------------------------------------


async def _open(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def _read_until_closed(stream: trio.SocketStream) -> bytes:
    received = b""
    while True:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return received
        if not data:
            return received
        received += data


@asynccontextmanager
async def _serving(limits: ServerLimits) -> AsyncIterator[tuple[trio.Nursery, int]]:
    """A server with these limits on a loopback port, stopped when the block ends."""
    server = NativeServer(make_app(), [KvRoute()], limits=limits)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: server.serve(
                "127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        try:
            yield nursery, port
        finally:
            stop.set()


async def test_a_slowloris_client_is_cut_by_the_read_timeout():
    limits = ServerLimits(read_timeout=1.0, idle_timeout=5.0)
    async with _serving(limits) as (nursery, port):
        stream = await _open(port)
        await stream.send_all(b"GET /hello HTTP/1.1\r\n")
        started = trio.current_time()

        async def drip() -> None:
            # The attack itself: one byte of a header every 100 ms, forever.
            try:
                while True:
                    await stream.send_all(b"x")
                    await trio.sleep(0.1)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        nursery.start_soon(drip)
        with trio.fail_after(5):
            answer = await _read_until_closed(stream)
        elapsed = trio.current_time() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.9 < elapsed < 3
        await stream.aclose()


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout():
    limits = ServerLimits(read_timeout=5.0, idle_timeout=0.5)
    async with _serving(limits) as (nursery, port):
        stream = await _open(port)
        await stream.send_all(get("/hello"))
        with trio.fail_after(5):
            answer = await _read_until_closed(stream)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello")
        await stream.aclose()


async def test_a_body_that_stops_after_its_first_bytes_is_cut_by_the_read_timeout():
    # The first bytes come with the head (read without a wait); the rest never do.
    limits = ServerLimits(read_timeout=0.5, idle_timeout=5.0)
    async with _serving(limits) as (nursery, port):
        stream = await _open(port)
        await stream.send_all(put("k", b"0123456789")[:-5])
        started = trio.current_time()
        with trio.fail_after(5):
            answer = await _read_until_closed(stream)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"timeout"' in answer
        assert 0.4 < trio.current_time() - started < 3
        await stream.aclose()
        stream = await _open(port)  # nothing of it was stored
        await stream.send_all(get("/kv/k"))
        with trio.fail_after(5):
            answer = await stream.receive_some(65536)
        assert b"key_not_found" in answer, answer
        await stream.aclose()


async def test_shutdown_finishes_busy_requests_closes_idle_ones_and_leaves_no_task():
    app = make_app()
    release = trio.Event()
    entered = trio.Event()

    @app.get("/slow")
    async def slow() -> str:
        entered.set()
        await release.wait()
        return "done"

    server = NativeServer(app, [KvRoute()], limits=ServerLimits(graceful=5.0))
    stop = trio.Event()
    before = _all_tasks()
    served = trio.Event()
    async with trio.open_nursery() as nursery:

        async def run(task_status: trio.TaskStatus[int]) -> None:
            await server.serve("127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status)
            served.set()

        port = await nursery.start(run)
        idle = await _open(port)
        await idle.send_all(get("/hello"))
        answer = b""
        with trio.fail_after(5):
            while not answer.endswith(b"hello"):
                answer += await idle.receive_some(1000)
        busy = await _open(port)
        await busy.send_all(get("/slow"))
        with trio.fail_after(5):
            await entered.wait()
        stop.set()
        with trio.fail_after(5):
            assert await _read_until_closed(idle) == b""  # closed at once, before /slow ends
            while server.connections > 1:
                await trio.testing.wait_all_tasks_blocked()
        assert not served.is_set()
        release.set()
        with trio.fail_after(5):
            answer = await _read_until_closed(busy)
            await served.wait()
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer
        assert answer.endswith(b"done")
        await idle.aclose()
        await busy.aclose()
    assert _all_tasks() == before
