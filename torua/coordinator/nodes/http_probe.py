"""The HTTP health probe, over the coordinator's own transport, one connection per node.

Through httpx a probe costs so much CPU that with many nodes the loop
saturates, probes time out and healthy nodes are convicted; a raw kept-alive
connection keeps the schedule (``nox -s bench`` measures the probe lag). The
probe uses
:class:`~torua.coordinator.nodes.connections.NodeConnections` (http and https, the
httptools response parser), with a pool of its own so that a probe never
queues behind data calls to a busy node: at most one connection per node.
"""

from __future__ import annotations

import ssl

import trio

from torua.cluster.states import CheckState
from torua.config import HealthSettings
from torua.coordinator.nodes.connections import NodeConnections
from torua.coordinator.nodes.probes import describe_error, probe_tcp
from torua.coordinator.state.node_checks import NodeChecks, summary
from torua.http.wire import WireError

__all__ = ["RawHttpProbe"]

MAX_BODY = 1024 * 1024


class RawHttpProbe:
    """A :data:`~torua.coordinator.nodes.probes.Probe` that keeps one connection per node."""

    def __init__(
        self,
        headers: dict[str, str],
        *,
        ssl_context: ssl.SSLContext | None = None,
        checks: NodeChecks | None = None,
    ):
        self._conns = NodeConnections(
            headers, per_node=1, max_idle=1, max_body=MAX_BODY, ssl_context=ssl_context
        )
        self._checks = checks  # where the nodes' self-checks found in answers are kept

    async def __call__(self, addr: str, settings: HealthSettings) -> str | None:
        if settings.kind == "tcp":
            return await probe_tcp(addr, settings)
        try:
            response = await self._conns.request(addr, "GET", settings.path)
        except (OSError, trio.BrokenResourceError, WireError) as exc:
            return describe_error(exc)
        if self._checks is not None:
            found = self._checks.note(addr, response.body)
            critical = [c for c in found if c["state"] == CheckState.CRITICAL]
            if response.status != 200 and critical:
                return f"critical: {summary(critical)}"
        return None if response.status == 200 else f"HTTP {response.status}"

    def forget(self, addr: str) -> None:
        self._conns.forget(addr)
        if self._checks is not None:
            self._checks.forget(addr)

    def close(self) -> None:
        self._conns.close()
