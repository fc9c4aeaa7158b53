"""Torua's own HTTP/1.1 server: a Trio accept loop and httptools parsing.

The data routes are answered natively; everything else reaches the Quart app
through a small ASGI bridge on the same port (see :mod:`.server`).
"""

from torua.http.native.limits import ServerLimits
from torua.http.native.server import NativeServer, serve_native

__all__ = ["NativeServer", "ServerLimits", "serve_native"]
