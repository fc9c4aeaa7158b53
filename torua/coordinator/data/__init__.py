"""The data path: every client read and write, and the machinery that keeps
copies consistent while they do.

It owns the router (reads, replicated writes, repairs), the bulk API and its
per-node import batching, version numbers, the write tracker (writes in flight
during a fill), page copies between nodes, assignment pushes and the carrying
out of the copy lifecycle's instructions. It may import ``nodes`` and
``state`` and ``torua.cluster``; never ``control`` or ``api``.
"""
