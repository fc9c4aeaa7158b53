"""One small HTTP client per node, sharing one SSL context.

Measured on this stack: a single httpx client shared by hundreds of
nodes collapses, because its pool rescans every connection on each request;
a client per node keeps each pool tiny. Building a client costs ~26 ms unless
it is handed a ready SSL context, so one context serves them all.

The pool also owns the raw kept-alive connections the coordinator uses for
its calls to nodes, http and https
(:class:`~torua.coordinator.node_conns.NodeConnections`), built with the same
headers and SSL context, so everything sent under one pool carries the same
identity and ``aclose()`` closes all of it.
"""

from __future__ import annotations

import ssl

import httpx

from torua.config import normalize_url
from torua.coordinator.node_conns import NodeConnections
from torua.sim import seam

__all__ = ["ClientPool"]


class ClientPool:
    def __init__(self, headers: dict[str, str], *, per_node: int = 64) -> None:
        self._headers = headers
        self._limits = httpx.Limits(max_connections=per_node, max_keepalive_connections=per_node)
        self._ssl = ssl.create_default_context()
        self._clients: dict[str, httpx.AsyncClient] = {}
        self.raw = NodeConnections(self.headers, per_node=per_node, ssl_context=self._ssl)

    @property
    def headers(self) -> dict[str, str]:
        """The headers every call to a node carries (coordinator id, token)."""
        return dict(self._headers)

    def get(self, addr: str) -> httpx.AsyncClient:
        base = normalize_url(addr)
        client = self._clients.get(base)
        if client is None:
            client = httpx.AsyncClient(
                headers=self._headers,
                verify=self._ssl,
                limits=self._limits,
                timeout=httpx.Timeout(10.0),
                transport=seam.current().http_transport(),
            )
            self._clients[base] = client
        return client

    async def aclose(self) -> None:
        self.raw.close()  # first, and synchronously: a cancelled close still closes these
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
