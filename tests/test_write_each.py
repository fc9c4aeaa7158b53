"""NodeClient.write_each: one write to several nodes from one task, over kept
connections, against loopback servers: every node gets it before any answer is
read, one hung node fails alone, and a cancelled call leaves nothing behind."""

from __future__ import annotations

from functools import partial

import trio
import trio.testing

from tests.fake_nodes import router_rig
from tests.scripted_http import THEN_CLOSE, scripted_server
from torua.coordinator.nodes.client import NodeClient, NodeUnreachable, Reply
from torua.coordinator.nodes.connections import NodeConnections

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nx-torua-version: 7\r\n\r\n"


class LoopbackNode:
    """Answers each request with 204 once ``answer_after`` is set (if given);
    ``hang`` makes it read requests and never answer."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self.arrived = trio.Event()
        self.answer_after: trio.Event | None = None
        self.hang = False
        self.closed = 0
        self.gone = trio.Event()  # set when the client ends a connection

    def _ended(self) -> None:
        self.closed += 1
        self.gone.set()

    async def handler(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        self._ended()
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                buffer = buffer[length:]
                self.requests.append(head + b"\r\n")
                self.arrived.set()
                if self.hang:
                    if not await stream.receive_some(65536):
                        self._ended()
                    return
                if self.answer_after is not None:
                    await self.answer_after.wait()
                await stream.send_all(NO_CONTENT)
        except trio.BrokenResourceError:
            self._ended()


async def _serve(nursery: trio.Nursery, node: LoopbackNode) -> str:
    listeners = await nursery.start(partial(trio.serve_tcp, node.handler, 0, host="127.0.0.1"))
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


def _statuses(answers: list[Reply | NodeUnreachable]) -> list[object]:
    return [a.status if isinstance(a, Reply) else "unreachable" for a in answers]


async def test_every_node_has_the_write_before_any_answer_is_awaited() -> None:
    a, b = LoopbackNode(), LoopbackNode()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addrs = [await _serve(nursery, a), await _serve(nursery, b)]
            async with NodeConnections({"X-Torua-Epoch": "4"}) as pool:
                nodes = NodeClient(pool)
                # no kept connection yet: each node gets its own task
                assert _statuses(await nodes.write_each(addrs, 3, "k", b"v1", 1)) == [204, 204]
                # now each answers only once the other has the write: reading a's
                # answer before sending to b would never finish
                a.arrived, b.arrived = trio.Event(), trio.Event()
                a.answer_after, b.answer_after = b.arrived, a.arrived
                answers = await nodes.write_each(addrs, 3, "k", None, 2)
                assert _statuses(answers) == [204, 204]
                assert answers[0].version == 7
            nursery.cancel_scope.cancel()
    assert (a.connections, b.connections) == (1, 1)  # the kept connections carried it
    assert a.requests[0].startswith(b"PUT /shard/3/store/k HTTP/1.1\r\n")
    assert b"X-Torua-Version: 1\r\n" in a.requests[0]
    assert a.requests[1].startswith(b"DELETE /shard/3/store/k HTTP/1.1\r\n")
    assert b"X-Torua-Version: 2\r\n" in b.requests[1]
    for request in a.requests + b.requests:  # the leader's epoch rides on every write
        assert b"\r\nX-Torua-Epoch: 4\r\n" in request


async def test_a_hung_node_fails_alone_even_when_its_answer_is_awaited_first() -> None:
    a, b = LoopbackNode(), LoopbackNode()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addrs = [await _serve(nursery, a), await _serve(nursery, b)]
            async with NodeConnections({}) as pool:
                nodes = NodeClient(pool, request_timeout=0.3)
                assert _statuses(await nodes.write_each(addrs, 0, "k", b"v", 1)) == [204, 204]
                a.hang = True
                answers = await nodes.write_each(addrs, 0, "k", b"v", 2)
                assert _statuses(answers) == ["unreachable", 204]
                assert "in time" in str(answers[0])
                for addr in addrs:  # no slot held, no socket left open
                    assert (pool._nodes[addr].in_use, pool._nodes[addr].busy) == (0, set())
                assert _statuses(await nodes.write_each(addrs[1:], 0, "k", b"v", 3)) == [204]
            nursery.cancel_scope.cancel()
    assert a.closed == 1  # the client closed the connection it gave up on


async def test_a_cancelled_write_each_closes_its_connections_and_frees_its_slots() -> None:
    a, b = LoopbackNode(), LoopbackNode()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addrs = [await _serve(nursery, a), await _serve(nursery, b)]
            async with NodeConnections({}) as pool:
                nodes = NodeClient(pool)
                assert _statuses(await nodes.write_each(addrs, 0, "k", b"v", 1)) == [204, 204]
                a.hang = b.hang = True
                a.arrived, b.arrived = trio.Event(), trio.Event()
                with trio.CancelScope() as scope:

                    async def cancel_once_both_have_it() -> None:
                        await a.arrived.wait()
                        await b.arrived.wait()
                        scope.cancel()

                    nursery.start_soon(cancel_once_both_have_it)
                    await nodes.write_each(addrs, 0, "k", b"v", 2)
                assert scope.cancelled_caught
                for addr in addrs:
                    assert (pool._nodes[addr].in_use, pool._nodes[addr].busy) == (0, set())
                    assert pool._nodes[addr].idle == []
                await a.gone.wait()  # both servers see their connection end
                await b.gone.wait()
            nursery.cancel_scope.cancel()


async def test_a_kept_connection_closed_unanswered_is_resent_on_a_fresh_one() -> None:
    log: list[bytes] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await scripted_server(nursery, [NO_CONTENT, None, NO_CONTENT], log)
            async with NodeConnections({}) as pool:
                nodes = NodeClient(pool)
                addr = f"http://127.0.0.1:{port}"
                assert _statuses(await nodes.write_each([addr], 0, "k", b"v", 1)) == [204]
                # sent on the kept connection, which the node closes without answering
                assert _statuses(await nodes.write_each([addr], 0, "k", b"v", 2)) == [204]
            nursery.cancel_scope.cancel()
    assert log.count(b"<connection>") == 2
    assert sum(b"X-Torua-Version: 2\r\n" in r for r in log) == 2  # the write, then its resend


async def test_a_copy_that_did_not_know_its_shard_is_told_then_takes_the_write() -> None:
    async with router_rig(["n1", "n2", "n3"]) as rig:
        rig.nodes["n2"].held = False  # e.g. restarted and not pushed to yet
        await rig.router.write("k", b"v")
        assert rig.nodes["n2"].held  # an assignment reached it
        for name in ("n1", "n2", "n3"):
            assert rig.nodes[name].records[(0, "k")][0] == b"v"
        assert rig.state.table.shards[0].in_sync == {"n1", "n2", "n3"}
        assert await rig.router.get("k") == b"v"


async def test_a_kept_connection_the_node_already_closed_still_carries_the_next_write() -> None:
    log: list[bytes] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            # answered, then closed by the node before the next write begins
            port = await scripted_server(nursery, [NO_CONTENT + THEN_CLOSE, NO_CONTENT], log)
            async with NodeConnections({}) as pool:
                nodes = NodeClient(pool)
                addr = f"http://127.0.0.1:{port}"
                assert _statuses(await nodes.write_each([addr], 0, "k", b"v", 1)) == [204]
                await trio.testing.wait_all_tasks_blocked()  # the close has happened
                assert _statuses(await nodes.write_each([addr], 0, "k", b"v", 2)) == [204]
            nursery.cancel_scope.cancel()
    assert log.count(b"<connection>") == 2
