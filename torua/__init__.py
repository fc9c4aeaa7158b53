"""Torua: a distributed key-value cluster runtime on Trio.

Layers, imports pointing one way:

* ``torua.cluster``      pure, synchronous shard table and placement (no trio)
* ``torua.coordinator``  health monitor, redistributor, router, HTTP API, service
* ``torua.node``         store, HTTP API, registration, service
* ``torua.launcher``     ``python -m torua up``: a whole local cluster
* ``torua.__main__``     argv -> settings -> logging -> trio.run
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
