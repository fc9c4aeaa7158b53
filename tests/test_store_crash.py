"""Every write a SqliteStore acknowledged survives SIGKILL of its process.

A child process writes as fast as it can from several tasks (overwrites and
deletes included) and prints each write only after ``put()`` returned. We
SIGKILL it mid-stream, reopen the directory and check every printed write:
the key is there with that version or a newer one. A second child then runs
on the same directory, proving a killed store restarts (its lock and WAL
recover) and keeps its versions.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import trio

from torua.node.sqlite_store import open_sqlite_store
from torua.node.store import Record

ROOT = Path(__file__).resolve().parent.parent
ACKS_BEFORE_KILL = 1500

CHILD = """
import sys, trio
from torua.node.sqlite_store import open_sqlite_store

async def main(directory, base):
    async with open_sqlite_store(directory) as store:
        async def writer(w):
            for i in range(10**9):
                key, version = f"w{w}-{i % 40}", base + i + 1
                value = None if i % 7 == 3 else f"{w}:{i}".encode()
                await store.put(w % 3, key, value, version)
                kind = "del" if value is None else "put"
                print(w % 3, key, version, kind, flush=True)  # acknowledged

        async with trio.open_nursery() as nursery:
            for w in range(8):
                nursery.start_soon(writer, w)

trio.run(main, sys.argv[1], int(sys.argv[2]))
"""


async def run_and_kill(directory: Path, base: int) -> list[tuple[int, str, int, str]]:
    """Start a writer child, SIGKILL it after enough acknowledgements, return them."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", CHILD, str(directory), str(base)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    acks: list[tuple[int, str, int, str]] = []
    try:
        assert process.stdout is not None
        buffer = b""
        with trio.fail_after(8):
            while len(acks) < ACKS_BEFORE_KILL:
                chunk = await process.stdout.receive_some()
                assert chunk, f"writer exited early with {await process.wait()}"
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    shard, key, version, kind = line.decode().split()
                    acks.append((int(shard), key, int(version), kind))
        psutil.Process(process.pid).kill()  # mid-stream: writes are in flight
        assert await process.wait() == -9
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
        if process.stdout is not None:
            await process.stdout.aclose()
    return acks


def check(acks: list[tuple[int, str, int, str]], stored: dict[tuple[int, str], Record]) -> None:
    for shard, key, version, kind in acks:
        record = stored.get((shard, key))
        assert record is not None, f"acknowledged {key}@{version} is gone"
        assert record.version >= version, f"{key}: acknowledged {version}, found {record.version}"
        if record.version == version:
            assert (record.value is None) == (kind == "del"), f"{key}@{version} lost its {kind}"


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    highest = 0
    for base in (0, 10**6):  # the second run restarts on the killed store's files
        acks = await run_and_kill(tmp_path, base)
        async with open_sqlite_store(tmp_path) as store:
            stored = {
                (shard, key): record
                for shard in range(3)
                for key, record in await store.export(shard)
            }
            check(acks, stored)
            assert store.max_version() >= max(version for *_, version, _ in acks) > highest
            highest = store.max_version()
