"""The simulated clients: raw HTTP/1.1 over the simulated network, recording a history.

The Jepsen harness's clients use httpx; here a client writes its requests
with Torua's own wire module (one kept-alive connection per coordinator),
which costs a fraction of httpx's CPU per request: the simulator spends its
time on the cluster, not on the test's clients. Outcomes follow the Jepsen
workload's rules: a definite answer completes an op; a timeout, a 5xx or a
broken connection leaves it unknown.
"""

from __future__ import annotations

import trio

from torua.http.wire import WireError, encode_request, exchange

from ..jepsen.workload import History, record_answer
from ..linearizability import Kind
from .hosts import SimHost

__all__ = ["WireClient", "one_op"]

OP_TIMEOUT = 2.5
MAX_BODY = 1 << 20


class WireClient:
    """One coordinator, one connection at a time, reopened after any failure."""

    def __init__(self, host: SimHost, name: str, port: int) -> None:
        self._host = host
        self._name = name
        self._port = port
        self._head = f"host: {name}:{port}\r\n".encode()
        self._stream: trio.abc.Stream | None = None

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        """(status, body); raises OSError or WireError (or TooSlowError) when no answer."""
        if self._stream is None:
            self._stream = await self._host.net.connect(self._host.name, self._name, self._port)
        stream = self._stream
        try:
            response = await exchange(
                stream, encode_request(method, path, self._head, body), max_body=MAX_BODY
            )
        except BaseException:
            self._stream = None
            await trio.aclose_forcefully(stream)
            raise
        if not response.reusable:
            self._stream = None
            await stream.aclose()
        return response.status, response.body

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
            self._stream = None


async def one_op(
    http: WireClient, history: History, client: int, key: str, kind: Kind, value: bytes | None
) -> str:
    """Run one op, record it, return its outcome ("ok", "fail" or "unknown")."""
    invoke = trio.current_time()
    method = {"read": "GET", "write": "PUT", "delete": "DELETE"}[kind]
    try:
        with trio.fail_after(OP_TIMEOUT):
            status, body = await http.request(method, f"/data/{key}", value)
    except (OSError, WireError, trio.BrokenResourceError, trio.TooSlowError) as exc:
        history.add(key, kind, value, invoke, None, client, "unknown", type(exc).__name__)
        return "unknown"
    return record_answer(history, client, key, kind, value, invoke, status, body)
