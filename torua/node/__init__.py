"""The storage node: store, HTTP API, registration, service."""

from torua.node.service import Node as Node

__all__ = ["Node"]
