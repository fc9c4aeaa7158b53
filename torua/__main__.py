"""argv -> settings -> logging -> trio.run. The only place handlers are configured.

A bad setting prints one line naming it and exits with status 2, never a
traceback. SIGINT and SIGTERM stop a service gracefully and exit 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Callable, Sequence

import trio

from torua.environment import (
    add_coordinator_flags,
    add_node_flags,
    coordinator_settings,
    node_settings,
)
from torua.errors import ConfigError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torua", description="Torua key-value cluster")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="run a coordinator and N nodes on loopback")
    up.add_argument("--nodes", default="3")
    up.add_argument("--coordinators", default="1", help="more than 1 starts a local etcd")
    up.add_argument("--port", default="8080")
    up.add_argument("--shards", help="shard count (TORUA_SHARDS, default 16)")
    up.add_argument("--replicas", help="copies per shard (TORUA_REPLICATION_FACTOR, default 2)")
    up.add_argument("--data-dir", default=None)
    up.add_argument("--memory", action="store_true")
    up.add_argument(
        "--access-log",
        action="store_true",
        help="every process logs one line per HTTP request (TORUA_ACCESS_LOG=1)",
    )
    add_coordinator_flags(commands.add_parser("coordinator", help="run the coordinator"))
    add_node_flags(commands.add_parser("node", help="run one storage node"))
    from torua.cli.commands import add_client_commands

    add_client_commands(commands)
    return parser


async def _serve_until_signal(factory: Callable[[], object]) -> int:
    """Run a service until a signal; return the exit status.

    SIGINT stops at once. SIGTERM stops too, except that a node first leaves
    gracefully (drains through the coordinator) and exits 0 only once that was
    confirmed.
    """
    service = factory()
    status = 0
    async with trio.open_nursery() as nursery:

        async def stop_on_signal() -> None:
            nonlocal status
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if signum == signal.SIGTERM and hasattr(service, "leave"):
                        status = 0 if await service.leave() else 1
                    else:
                        service.stop()  # type: ignore[attr-defined]
                    return

        nursery.start_soon(stop_on_signal)
        async with trio.open_nursery() as inner:
            url = await inner.start(service.run)  # type: ignore[attr-defined]
            _freeze_startup_objects()
            # One flushed line that supervisors and tests wait for.
            print(f"READY {url}", flush=True)
        nursery.cancel_scope.cancel()
    return status


def _freeze_startup_objects() -> None:
    """Keep what start-up built (modules, the apps, their routes: most of the
    heap, and it lives as long as the process) out of the garbage collector's
    full passes, which under load rescanned all of it every few seconds while
    every request in flight waited: the worst of the tail latency. Start-up
    garbage is collected first, so nothing dead is kept.
    """
    gc.collect()
    gc.freeze()


def _run_service(factory: Callable[[], object], name: str, log_level: str | None) -> int:
    from torua.logs import configure_logging

    configure_logging(name, log_level)
    return trio.run(_serve_until_signal, factory)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ
    try:
        if args.command == "coordinator":
            from torua.coordinator import Coordinator
            from torua.ha import HACoordinator

            settings = coordinator_settings(args, env)
            if settings.etcd_endpoints:
                return _run_service(lambda: HACoordinator(settings), "coordinator", args.log_level)
            return _run_service(lambda: Coordinator(settings), "coordinator", args.log_level)
        if args.command == "node":
            from torua.node import Node

            node = node_settings(args, env)
            return _run_service(lambda: Node(node), node.node_id, args.log_level)
        if args.command == "up":
            from torua.launcher import run_up
            from torua.logs import configure_logging
            from torua.up_settings import up_settings_from

            up = up_settings_from(args, env)
            configure_logging("up")
            return trio.run(run_up, up)
        from torua.cli.commands import run_client_command

        return run_client_command(args)
    except ConfigError as exc:
        print(f"torua: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Interrupted before the service was up (its own handler takes over after).
        return 130


if __name__ == "__main__":
    sys.exit(main())
