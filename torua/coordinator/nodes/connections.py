"""Kept-alive raw HTTP/1.1 connections from the coordinator to each node, http or https.

Every routed read or write is one or two calls to nodes; through httpx each
cost ~0.7 ms of CPU, about as much as the node spent answering. This
pool writes the request itself (:mod:`torua.http.wire`) over connections it
keeps per node: a LIFO idle list (the most recently used connection is the one
least likely to have been closed), at most ``per_node`` connections in use at
once and ``max_idle`` kept when idle.

A kept connection can have been closed by the node meanwhile (it restarted,
or its keep-alive timeout ran out). Before reuse a connection with anything to
read (EOF included) is dropped; and a request that failed on a reused
connection before any byte of the answer arrived is sent again on a fresh one
when it is idempotent, since the node may not have seen it at all.

An https:// node gets the same pool over ``trio.SSLStream`` (one SSL context
for all of them: building one costs ~26 ms), so every call to a node, and
every health probe (:mod:`torua.coordinator.nodes.http_probe`, with a pool of its
own), goes through this one transport.

Headers (coordinator id, leader epoch, token) are fixed at construction; a new
leader term builds a new pool. ``close()`` closes every socket,
idle or in use, so nothing outlives the coordinator's nursery.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import trio

from torua.config import normalize_url
from torua.coordinator.nodes.sent import Sent
from torua.coordinator.nodes.streams import StaleConnection, close_now, has_input
from torua.http.direct_io import send_now
from torua.http.wire import Response, WireError, encode_request, exchange, read_response
from torua.sim import seam

__all__ = ["NodeConnections", "header_lines"]

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_BODY = 256 * 1024 * 1024  # an export page or a bulk read can be large
IDLE_SECONDS = 15.0  # below the nodes' keep-alive timeout (30 s, torua.http.server)


def header_lines(headers: dict[str, str]) -> bytes:
    """``Name: value\\r\\n`` for each header, ready to go after the request line."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


@dataclass(slots=True, eq=False)
class _Node:
    host: str
    port: int
    prefix: str  # a path the address carries, e.g. "/n17"
    head: bytes  # Host line and the pool's headers
    tls: bool
    idle: list[tuple[trio.abc.Stream, float]] = field(default_factory=list)
    busy: set[trio.abc.Stream] = field(default_factory=set)
    in_use: int = 0
    lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)


class NodeConnections:
    def __init__(
        self,
        headers: dict[str, str],
        *,
        per_node: int = 64,
        max_idle: int = 32,
        max_body: int = MAX_BODY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` verifies https nodes (default: the system's trust store)."""
        self._headers = dict(headers)
        self._extra = header_lines(headers)
        self._max_body = max_body
        self._ssl = ssl_context
        self._per_node = per_node
        self._max_idle = per_node if max_idle is None else max_idle
        self._nodes: dict[str, _Node | None] = {}
        self._closed = False

    @property
    def headers(self) -> dict[str, str]:
        """The headers every call carries (a copy: the pool's own are fixed)."""
        return dict(self._headers)

    async def __aenter__(self) -> NodeConnections:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def handles(self, addr: str) -> bool:
        """True for http:// and https:// addresses."""
        return self._node(addr) is not None

    def _node(self, addr: str) -> _Node | None:
        try:
            return self._nodes[addr]
        except KeyError:
            pass
        url = urlsplit(normalize_url(addr))
        node = None
        if url.scheme in ("http", "https"):
            tls = url.scheme == "https"
            host, port = url.hostname or "127.0.0.1", url.port or (443 if tls else 80)
            shown = f"[{host}]" if ":" in host else host
            head = f"Host: {shown}:{port}\r\n".encode("latin-1") + self._extra
            node = _Node(host, port, url.path.rstrip("/"), head, tls)
        self._nodes[addr] = node
        return node

    async def request(
        self,
        addr: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: bytes = b"",
        idempotent: bool | None = None,
    ) -> Response:
        """One request to a node; ``headers`` are extra ready-made header lines.

        Raises :class:`~torua.http.wire.WireError`, ``OSError`` or
        ``trio.BrokenResourceError`` when the node cannot be reached or answers
        garbage; the caller applies the deadline.
        """
        node = self._node(addr)
        if node is None:
            raise ValueError(f"{addr} is not an http:// or https:// address")
        request = _encode(node, method, path, headers, body)
        retry = method in IDEMPOTENT if idempotent is None else idempotent
        while node.in_use >= self._per_node:
            await node.lot.park()
        node.in_use += 1
        try:
            try:
                return await self._send(node, request, method, fresh=False)
            except StaleConnection:
                if not retry:
                    raise
            # a kept connection the node had closed: once more, on a fresh one
            return await self._send(node, request, method, fresh=True)
        finally:
            node.in_use -= 1
            node.lot.unpark()

    async def _send(self, node: _Node, request: bytes, method: str, *, fresh: bool) -> Response:
        stream = None if fresh else self._take(node)
        reused = stream is not None
        if stream is None:
            stream = await self._open(node)
        node.busy.add(stream)
        return await self._finish(node, stream, request, method, reused, None)

    async def _finish(
        self,
        node: _Node,
        stream: trio.abc.Stream,
        request: bytes,
        method: str,
        reused: bool,
        unsent: bytes | None,
    ) -> Response:
        """The exchange on ``stream`` (in ``node.busy``): all of it, or, when the
        request already went out but for ``unsent``, the rest of it."""
        try:
            if unsent is None:
                response = await exchange(
                    stream, request, head_only=method == "HEAD", max_body=self._max_body
                )
            else:
                if unsent:
                    await stream.send_all(unsent)
                response = await read_response(
                    stream, head_only=method == "HEAD", max_body=self._max_body
                )
        except (WireError, OSError, trio.BrokenResourceError) as exc:
            close_now(stream)
            if reused and not (isinstance(exc, WireError) and exc.started):
                raise StaleConnection(str(exc) or type(exc).__name__) from exc
            raise
        except BaseException:  # cancelled mid-exchange: the connection is unusable
            close_now(stream)
            raise
        finally:
            node.busy.discard(stream)
        if response.reusable and not self._closed and len(node.idle) < self._max_idle:
            node.idle.append((stream, seam.current().monotonic()))
        else:
            close_now(stream)
        return response

    def send_nowait(
        self,
        addr: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: bytes = b"",
        idempotent: bool | None = None,
    ) -> Sent | None:
        """Write a request on a kept connection without waiting; read its answer with
        :meth:`Sent.answer`, and always end it with :meth:`Sent.abandon`.

        None when that would need a wait: no free slot, no kept plain-socket
        connection (TLS and simulated streams included), a connection that
        failed. The caller then uses :meth:`request`, which waits. This is how
        one task sends a write to several nodes at once and then reads their
        answers one after another: no task per node.
        """
        node = self._node(addr)
        if node is None or node.tls or node.in_use >= self._per_node:
            return None
        if not node.idle or type(node.idle[-1][0]) is not trio.SocketStream:
            return None
        retry = method in IDEMPOTENT if idempotent is None else idempotent
        stream = self._take(node, check=not retry)
        if stream is None:
            return None
        request = _encode(node, method, path, headers, body)
        try:
            sent = send_now(stream, request)
        except OSError:  # closed by the node meanwhile: the waiting path opens another
            close_now(stream)
            return None
        node.in_use += 1
        node.busy.add(stream)
        return Sent(self, node, stream, request, method, retry, request[sent:])

    async def _open(self, node: _Node) -> trio.abc.Stream:
        tcp = await seam.current().open_tcp_stream(node.host, node.port)
        if not node.tls:
            return tcp
        assert isinstance(tcp, trio.SocketStream)  # TLS is never simulated
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        stream = trio.SSLStream(tcp, self._ssl, server_hostname=node.host, https_compatible=True)
        try:
            await stream.do_handshake()
        except BaseException:
            tcp.socket.close()
            raise
        return stream

    def _take(self, node: _Node, *, check: bool = True) -> trio.abc.Stream | None:
        """The most recently kept connection still young enough; ``check`` also
        rules out one with anything to read (a poll per call, skipped when a
        request that finds its connection closed may simply be sent again)."""
        now = seam.current().monotonic()
        while node.idle:
            stream, since = node.idle.pop()
            if now - since < IDLE_SECONDS and not (check and has_input(stream)):
                return stream
            close_now(stream)
        return None

    def forget(self, addr: str) -> None:
        """Close the connections kept for ``addr`` (a node that left)."""
        node = self._nodes.pop(addr, None)
        if node is not None:
            for stream, _ in node.idle:
                close_now(stream)
            node.idle.clear()

    def close(self) -> None:
        """Close every connection, in use ones included; later requests still work
        but keep no connection."""
        self._closed = True
        for node in self._nodes.values():
            if node is None:
                continue
            for stream, _ in node.idle:
                close_now(stream)
            for stream in node.busy:
                close_now(stream)
            node.idle.clear()


def _encode(node: _Node, method: str, path: str, headers: bytes, body: bytes | None) -> bytes:
    """The request's bytes: the node's path prefix, its Host and pool headers, and
    an empty body where the method carries one."""
    if body is None and method in ("PUT", "POST", "PATCH"):
        body = b""
    return encode_request(method, node.prefix + path, node.head + headers, body)
