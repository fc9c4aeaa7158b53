"""``torua rolling-restart``: restart every node in turn, never more than one away.

For a cluster run by ``up`` on this machine, ``up`` restarts its own children:
this command sends it SIGHUP (its pid is in the up file) and follows the
progress it writes there. Anywhere else ``--command 'systemctl restart
torua@{node}'`` says how to restart one node, and this command walks the nodes
itself (torua.rolling).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import trio

from torua.cli.common import CommandError, base_url, print_json
from torua.rolling import RollingRestartFailed, rolling_restart, up_file

__all__ = ["add_rolling_arguments", "rolling"]

POLL = 0.2


def add_rolling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--command",
        dest="restart_command",
        default=None,
        metavar="TEMPLATE",
        help="how to restart one node, {node} standing for its id "
        "(default: ask the local `up` to restart its nodes)",
    )
    parser.add_argument(
        "--allocation-delay",
        default="5m",
        metavar="DURATION",
        help="how long a restarting node's copies wait for it (default 5m)",
    )
    parser.add_argument(
        "--step-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="give up when a node is not back with the cluster green within this (default 300)",
    )


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.json:
        print(line, flush=True)


def rolling(args: argparse.Namespace) -> int:
    if args.restart_command is not None:
        if "{node}" not in args.restart_command:
            raise CommandError("--command must contain {node}", status=2)
        restarted = trio.run(_walk, args)
    else:
        restarted = _through_up(args)
    if args.json:
        print_json({"restarted": restarted})
    else:
        print(f"rolling restart done: {', '.join(restarted)}", flush=True)
    return 0


async def _walk(args: argparse.Namespace) -> list[str]:
    template: str = args.restart_command

    async def restart(node_id: str) -> None:
        argv = [part.replace("{node}", node_id) for part in shlex.split(template)]
        result = await trio.run_process(
            argv, check=False, stdin=subprocess.DEVNULL, stdout=sys.stderr
        )
        if result.returncode != 0:
            raise RollingRestartFailed(f"{' '.join(argv)} exited with status {result.returncode}")

    headers = {"User-Agent": "torua-cli"}
    if token := os.environ.get("TORUA_TOKEN", "").strip():
        headers["Authorization"] = f"Bearer {token}"
    try:
        async with httpx.AsyncClient(base_url=base_url(args), headers=headers, timeout=10) as http:
            return await rolling_restart(
                http,
                restart,
                allocation_delay=args.allocation_delay,
                step_within=args.step_timeout,
                report=lambda line: _say(args, line),
            )
    except RollingRestartFailed as exc:
        raise CommandError(f"rolling restart stopped: {exc}") from None


def _read(path: Any) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise CommandError(
            f"no `up` cluster found (its file {path}: {exc}); "
            "pass --command TEMPLATE to restart nodes another way"
        ) from None


def _through_up(args: argparse.Namespace) -> list[str]:
    marker = up_file(base_url(args))
    data = _read(marker)
    asked = time.time()
    try:
        os.kill(int(data["pid"]), signal.SIGHUP)
    except (ProcessLookupError, PermissionError, KeyError, ValueError) as exc:
        raise CommandError(f"cannot signal `up` (pid {data.get('pid')}): {exc}") from None
    _say(args, f"asked `up` (pid {data['pid']}) to restart its nodes one at a time")
    seen = 0
    deadline = time.monotonic() + args.step_timeout * 64
    while time.monotonic() < deadline:
        progress = _read(marker).get("rolling") or {}
        if progress.get("started", 0) >= asked - 1:
            done = progress.get("restarted", [])
            for node_id in done[seen:]:
                _say(args, f"{node_id}: restarted")
            seen = len(done)
            if progress.get("state") == "done":
                return list(done)
            if progress.get("state") == "failed":
                raise CommandError(f"rolling restart stopped: {progress.get('error')}")
        time.sleep(POLL)
    raise CommandError("`up` did not finish its rolling restart in time")
