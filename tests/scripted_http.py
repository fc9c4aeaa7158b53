"""A loopback HTTP/1.1 server that answers from a script, for the raw clients' tests."""

from __future__ import annotations

from functools import partial

import trio

THEN_CLOSE = b"\x00<then close>"
"""Ends an answer that the server sends and then closes its connection after."""


async def scripted_server(
    nursery: trio.Nursery, script: list[bytes | None], log: list[bytes]
) -> int:
    """Answer requests in order from ``script``, on whatever connection they arrive;
    ``None`` closes that connection without answering, an answer ending in
    :data:`THEN_CLOSE` closes it after answering. ``log`` gets
    ``b"<connection>"`` per accepted connection and each request (head and body).
    Returns the port."""

    async def handler(stream: trio.SocketStream) -> None:
        log.append(b"<connection>")
        buffer = b""
        while script:
            while b"\r\n\r\n" not in buffer:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            length = sum(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(buffer) < length:
                buffer += await stream.receive_some(65536)
            log.append(head + b"\r\n\r\n" + buffer[:length])
            buffer = buffer[length:]
            answer = script.pop(0)
            if answer is None:
                await stream.aclose()
                return
            if answer.endswith(THEN_CLOSE):
                await stream.send_all(answer[: -len(THEN_CLOSE)])
                await stream.aclose()
                return
            await stream.send_all(answer)

    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])
