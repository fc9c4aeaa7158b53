"""Benchmarks: ``python -m torua.bench [--quick] [--out DIR]``, or ``nox -s bench``.

Real coordinator and node processes on 127.0.0.1, loaded by ``wrk`` (an
external load generator, so the client never shares a server's process):

* :mod:`.throughput` - GET and PUT through the coordinator and directly on a
  node, at concurrency 1 and 32 over 1,000 keys, for R=1 in memory and R=2
  durable; bulk keys/s (:mod:`.bulk`); peak RSS of every process.
* :mod:`.detection` - time to ``unhealthy`` with K of N nodes SIGSTOPped.
* :mod:`.probelag` - the health monitor's schedule lag and CPU with 1,000
  simulated nodes at a 1 s interval, for several probe client layouts.

Results go to ``results.json`` and ``results.md`` (:mod:`.report`), with a
targets table of ratios measured within the one run. Every process started is
reaped by pid, every temporary directory removed, every wait bounded.
"""
