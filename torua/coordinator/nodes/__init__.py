"""Talking to the storage nodes: pooled keep-alive connections, the node
client's calls, and the health probes (HTTP and TCP).

It owns the transport only, no decision: a failed call is a value or a
:class:`~torua.coordinator.nodes.client.NodeUnreachable`, and what follows is
the caller's choice. It may import ``state`` (the checks a probe records),
``torua.http`` and ``torua.cluster``; nothing else of the coordinator.
"""
