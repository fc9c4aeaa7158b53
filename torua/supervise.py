"""How every Torua supervisor stops a child process: `up`, the tests and the bench.

One rule, in one place, because each copy of it once missed a step:

1. a child that is suspended (a test, a fault run or an operator SIGSTOPped it)
   is continued first, or the stop signal would wait in the kernel forever;
2. then it gets ``signum``: SIGINT stops a node without draining (the cluster
   is going away, or a test wants it gone), SIGTERM makes a node leave
   gracefully through the coordinator;
3. a child still running after ``grace`` seconds is killed;
4. the child is always reaped, by its pid, so no zombie or orphan outlives the
   supervisor.

:func:`stop_child` is for Trio supervisors (``up``, the process tests);
:func:`stop_children` for the synchronous bench, which stops all its children
at once under one deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable

import trio

__all__ = ["STOP_GRACE", "stop_child", "stop_children"]

STOP_GRACE = 10.0  # seconds a child gets to stop cleanly before it is killed


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it exited meanwhile; reaping below still collects it


async def stop_child(
    process: trio.Process, *, signum: int = signal.SIGINT, grace: float = STOP_GRACE
) -> tuple[int, bool]:
    """Stop and reap one child; (its exit status, whether it had to be killed)."""
    if process.returncode is not None:
        return process.returncode, False
    _signal(process.pid, signal.SIGCONT)
    _signal(process.pid, signum)
    with trio.move_on_after(grace):
        return await process.wait(), False
    process.kill()
    return await process.wait(), True


def stop_children(
    children: Iterable[subprocess.Popen[bytes]],
    *,
    signum: int = signal.SIGINT,
    grace: float = STOP_GRACE,
) -> list[subprocess.Popen[bytes]]:
    """Stop and reap every live child under one deadline; the ones that were killed."""
    live = [child for child in children if child.poll() is None]
    for child in live:
        _signal(child.pid, signal.SIGCONT)
        _signal(child.pid, signum)
    deadline = time.monotonic() + grace
    killed = []
    for child in live:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
            killed.append(child)
    return killed
