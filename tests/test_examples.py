"""The examples in examples/ run as documented, as real processes.

``embedded_cluster.py`` runs a whole cluster in one Trio program;
``http_client.py`` and ``client_example.py`` talk to a cluster started by
``python -m torua up``, which must then stop on SIGTERM with exit status 0 and
leave no process behind.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import trio

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TORUA_TOKEN", "TORUA_COORDINATOR", "COORDINATOR_ADDR", "TORUA_DATA_DIR"):
        env.pop(name, None)
    return env


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_run(count: int) -> int:
    """A base port with ``count`` free ports from it, outside the ephemeral range.

    ``up`` takes consecutive ports (coordinator, then one per node). Ports the
    OS hands out for port 0 are ephemeral ones, which the cluster's own
    outbound connections may take before a node binds, so the base is a random
    high port below that range, checked by binding every port of the run.
    """
    low, high = _ephemeral_range()
    candidates = [(20000, min(low, 32768) - count)] if low > 20000 + count else []
    candidates.append((high + 1, 65535 - count))
    spans = [(a, b) for a, b in candidates if a < b]
    for _ in range(200):
        start, stop = random.choice(spans)
        base = random.randrange(start, stop)
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"found no run of {count} free ports")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill(pid: int) -> None:
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass


def test_embedded_cluster_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "embedded_cluster.py")],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in (
        "coordinator at http://127.0.0.1:",
        "node n3 at http://127.0.0.1:",
        "3 nodes healthy",
        "wrote and read back 4 keys",
        "shard map: 8 shards, replication factor 2",
        "cluster_state: green",
        "stopped cleanly",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr


async def test_http_client_against_up(tmp_path: Path) -> None:
    nodes = 2
    port = free_port_run(nodes + 1)
    env = _clean_env()
    argv = [sys.executable, "-m", "torua", "up", "--nodes", str(nodes), "--port", str(port)]
    up = await trio.lowlevel.open_process(
        [*argv, "--memory"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    started: set[int] = set()
    output: list[str] = []
    errors: list[str] = []
    url = f"http://127.0.0.1:{port}"
    token: str | None = None
    token_seen = trio.Event()

    async def pump(stream: trio.abc.ReceiveStream, lines: list[str], parse: bool) -> None:
        nonlocal token
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                lines.append(line)
                # `up` prints READY <url>, the URL table, then "  token        <token>".
                if parse and line.startswith("  token ") and f"READY {url}" in output:
                    token = line.split()[1]
                    token_seen.set()

    def report() -> str:
        return "stdout:\n" + "\n".join(output[-30:]) + "\nstderr:\n" + "\n".join(errors[-30:])

    try:
        async with trio.open_nursery() as nursery:
            assert up.stdout is not None and up.stderr is not None
            nursery.start_soon(pump, up.stdout, output, True)
            nursery.start_soon(pump, up.stderr, errors, False)

            with trio.move_on_after(45):
                await token_seen.wait()
            assert token, f"`up` printed no READY line and token\n{report()}"

            started.update(p.pid for p in psutil.Process(up.pid).children(recursive=True))
            assert len(started) >= nodes + 1, f"expected {nodes + 1} children, saw {started}"

            client_env = {**env, "TORUA_COORDINATOR": url, "TORUA_TOKEN": token}
            with trio.fail_after(60):
                client = await trio.run_process(
                    [sys.executable, str(EXAMPLES / "http_client.py")],
                    env=client_env,
                    cwd=tmp_path,
                    check=False,
                    capture_stdout=True,
                    capture_stderr=True,
                )
            client_out = client.stdout.decode(errors="replace")
            client_err = client.stderr.decode(errors="replace")
            assert client.returncode == 0, f"{client_out}\n{client_err}\n{report()}"
            # `up` waits for green; allow yellow in case a copy is still settling.
            assert re.search(r"^  cluster_state +(green|yellow)$", client_out, re.M), client_out
            assert "healthy" in client_out and client_out.rstrip().endswith("ok"), client_out

            async def example(token: str) -> tuple[int, str, str]:
                with trio.fail_after(60):
                    done = await trio.run_process(
                        [sys.executable, str(EXAMPLES / "client_example.py")],
                        env={**client_env, "TORUA_TOKEN": token},
                        cwd=tmp_path,
                        check=False,
                        capture_stdout=True,
                        capture_stderr=True,
                    )
                return done.returncode, done.stdout.decode(), done.stderr.decode()

            status, out, err = await example(token)
            assert status == 0, f"{out}\n{err}\n{report()}"
            for expected in (
                "get hello from torua.Client",
                "get b'\\x00\\x01\\x02\\xff'",
                "gone: key_not_found",
                "bulk: wrote 100, read 100 back",
                "async: wrote 20 concurrently, read 20 back",
            ):
                assert expected in out, f"{expected!r} missing from:\n{out}\n{err}"
            assert out.rstrip().endswith("ok"), out
            status, out, err = await example("not-the-token")
            assert status == 1 and out == "", out
            assert err.startswith("client_example: ") and "HTTP 403 forbidden" in err, err

            up.send_signal(signal.SIGTERM)
            with trio.fail_after(45):
                status = await up.wait()
            assert status == 0, f"`up` exited with {status}\n{report()}"
            # The pumps end once every holder of the pipes (children too) is gone;
            # a leaked child would hold them open, which the check below reports.
            nursery.cancel_scope.deadline = trio.current_time() + 10

        left = [pid for pid in started if _alive(pid)]
        assert not left, f"`up` left processes behind: {left}\n{report()}"
    finally:
        for pid in started:
            if _alive(pid):
                _kill(pid)
        if up.returncode is None:
            _kill(up.pid)
        with trio.CancelScope(shield=True):
            await up.wait()  # reap `up` itself
            for stream in (up.stdout, up.stderr):
                if stream is not None:
                    await stream.aclose()
