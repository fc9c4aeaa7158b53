"""The control plane: deciding where copies live and getting them there.

It owns the health monitor (probing, hysteresis), the redistributor
(placement on events), the mover (fills, merges, handovers), operator
operations (maintenance, drain, evacuate), planned shutdowns, membership
(register, remove), incarnations, the tombstone collector, load polling and
live configuration. It may import ``data`` (the copy lifecycle's actions and
the page copy), ``nodes`` and ``state``, and the pure ``torua.cluster``; never
``api``.
"""
