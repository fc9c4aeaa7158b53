"""Pure, synchronous cluster state: the shard table, placement and key hashing.

Nothing here imports trio or does I/O. The coordinator's services hold a
:class:`ShardTable`, describe the nodes as :class:`NodeState` snapshots, and
call the placement functions, which mutate the table and return the
:class:`Move` list for the services to carry out: state machines that return
instructions, so they are tested directly.
"""

from .hashing import fnv1a_32 as fnv1a_32
from .hashing import shard_for_key as shard_for_key
from .placement import PlacementConflict as PlacementConflict
from .placement import PlacementError as PlacementError
from .placement import UnknownNode as UnknownNode
from .placement import UnknownShard as UnknownShard
from .placement import assign_primary as assign_primary
from .placement import rebalance as rebalance
from .placement import reconcile as reconcile
from .placement import target_copies as target_copies
from .table import Move as Move
from .table import NodeState as NodeState
from .table import Shard as Shard
from .table import ShardTable as ShardTable
from .table import cluster_health as cluster_health

__all__ = [
    "Move",
    "NodeState",
    "PlacementConflict",
    "PlacementError",
    "Shard",
    "ShardTable",
    "UnknownNode",
    "UnknownShard",
    "assign_primary",
    "cluster_health",
    "fnv1a_32",
    "rebalance",
    "reconcile",
    "shard_for_key",
    "target_copies",
]
