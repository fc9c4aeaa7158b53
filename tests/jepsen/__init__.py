"""A Jepsen-style linearizability test of a real Torua cluster.

Concurrent clients read, write and delete a few hot keys with unique values
while a seeded nemesis pauses, kills and restarts processes, jumps the
coordinator's wall clock, and moves shards; afterwards the cluster is healed,
every key is read once more, and each key's history goes through the checker
in :mod:`tests.linearizability`. Run it with ``nox -s jepsen -- --seed 7`` or
``python -m tests.jepsen --help``.
"""
