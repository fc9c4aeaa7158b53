"""The size limits every process and the client agree on, each defined once.

A limit that a client checks before sending and a server checks on arrival
must be the same number, or one side refuses what the other accepts. This
module imports nothing, so the client, the CLI, the nodes and the coordinator
can all take their limits from it.
"""

from __future__ import annotations

__all__ = [
    "BODY_SLACK",
    "BULK_BODY_BYTES",
    "BULK_MAX_OPS",
    "DEFAULT_MAX_VALUE",
    "FRAME_MAX_KEY_BYTES",
    "IMPORT_MAX_KEY_CHARS",
    "MAX_KEY_BYTES",
]

MAX_KEY_BYTES = 1024
"""A key of the client API (``/data``, the bulk API, the client, the CLI, a
node's store route): 1 to this many bytes of UTF-8."""

IMPORT_MAX_KEY_CHARS = 4096
"""A key in a node's JSON import records: characters, not bytes, as JSON
counts them; looser than :data:`MAX_KEY_BYTES` so a copy never refuses a key
that some earlier version of the client API accepted."""

FRAME_MAX_KEY_BYTES = 4 * IMPORT_MAX_KEY_CHARS
"""A key in binary record frames between coordinator and nodes: the JSON
form's characters at up to four UTF-8 bytes each (the frame's length field is
a u16)."""

BULK_MAX_OPS = 10_000
"""Operations in one ``POST /data/_bulk``, and keys in one node ``get_many``."""

BULK_BODY_BYTES = 64 * 1024 * 1024
"""The largest request body the coordinator accepts (a bulk request carries
many values)."""

BODY_SLACK = 1024
"""Room above :data:`BULK_BODY_BYTES` for the servers and the leader's
forwarder, so the route's own limit is the one that answers 413."""

DEFAULT_MAX_VALUE = 16 * 1024 * 1024
"""The default largest value (``TORUA_MAX_VALUE``)."""
