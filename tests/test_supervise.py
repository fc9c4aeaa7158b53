"""The one rule for stopping a child, against real child processes on this machine."""

from __future__ import annotations

import signal
import subprocess
import sys

import trio

from torua.supervise import stop_child, stop_children

# Prints "ready" once its handler is installed, then waits; SIGINT ends it with 3.
POLITE = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *a: sys.exit(3))\n"
    "print('ready', flush=True)\n"
    "while True: time.sleep(1)\n"
)
# Ignores SIGINT: only SIGKILL ends it.
STUBBORN = POLITE.replace("lambda *a: sys.exit(3)", "signal.SIG_IGN")


async def _started(code: str) -> trio.Process:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    assert process.stdout is not None
    with trio.fail_after(30):
        assert (await process.stdout.receive_some(16)).startswith(b"ready")
    return process


async def test_a_suspended_child_is_continued_then_stopped_by_its_signal() -> None:
    process = await _started(POLITE)
    process.send_signal(signal.SIGSTOP)
    with trio.fail_after(30):
        status, killed = await stop_child(process, grace=20)
    assert (status, killed) == (3, False)


async def test_a_child_that_ignores_the_signal_is_killed_after_the_grace() -> None:
    process = await _started(STUBBORN)
    with trio.fail_after(30):
        status, killed = await stop_child(process, grace=0.5)
    assert killed and status == -signal.SIGKILL


async def test_an_exited_child_is_left_as_it_is() -> None:
    process = await _started(POLITE)
    process.send_signal(signal.SIGINT)
    assert await process.wait() == 3
    assert await stop_child(process) == (3, False)


def test_the_bench_stops_all_its_children_under_one_deadline() -> None:
    polite = subprocess.Popen([sys.executable, "-c", POLITE], stdout=subprocess.PIPE)
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    try:
        for child in (polite, stubborn):
            assert child.stdout is not None and child.stdout.readline().startswith(b"ready")
        polite.send_signal(signal.SIGSTOP)
        killed = stop_children([polite, stubborn], grace=2)
        assert killed == [stubborn]
        assert polite.returncode == 3 and stubborn.returncode == -signal.SIGKILL
    finally:
        for child in (polite, stubborn):
            if child.poll() is None:
                child.kill()
                child.wait()
            assert child.stdout is not None
            child.stdout.close()
