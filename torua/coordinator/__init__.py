"""The coordinator: health monitor, redistributor, router, HTTP API, service."""

from torua.coordinator.service import Coordinator as Coordinator

__all__ = ["Coordinator"]
