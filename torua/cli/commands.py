"""Client commands against a running coordinator.

Tables (rich) for people, ``--json`` for scripts. Exit status 0 on success,
1 on a failed operation (an HTTP error, a missing key, an unreachable
coordinator: one line on stderr, never a traceback), 2 on bad usage.

Every command takes ``--coordinator URL`` (else ``TORUA_COORDINATOR``, else
``http://127.0.0.1:8080``; several URLs separated by commas fail over in
turn) and sends ``Authorization: Bearer $TORUA_TOKEN`` when that is set.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from typing import Any

import httpx

from torua.cli.common import (
    CommandError,
    base_url,
    call,
    error_line,
    open_client,
    out_console,
    print_json,
)
from torua.cli.events import watch
from torua.cli.progress import drain, evacuate
from torua.cli.render import (
    maintenance_table,
    moves_table,
    nodes_table,
    shards_table,
    status_table,
)
from torua.cli.rolling import add_rolling_arguments, rolling
from torua.client import Client, ResponseError, Timeout, TransportError
from torua.limits import MAX_KEY_BYTES

__all__ = ["CLIENT_COMMANDS", "add_client_commands", "run_client_command"]

CLIENT_COMMANDS = (
    "status",
    "nodes",
    "shards",
    "put",
    "get",
    "delete",
    "drain",
    "maintenance",
    "evacuate",
    "rebalance",
    "watch",
    "rolling-restart",
)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_client_commands(commands: Any) -> None:
    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument(
            "--coordinator",
            default=None,
            metavar="URL",
            help="coordinator URL, or several separated by commas "
            "(TORUA_COORDINATOR, default http://127.0.0.1:8080)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        return parser

    client("status", "cluster state at a glance")
    client("nodes", "list nodes with health and mode")
    client("shards", "the shard map")
    put = client("put", "store a value (VALUE '-' reads stdin)")
    put.add_argument("key")
    put.add_argument("value", help="the value, or '-' to read the bytes from stdin")
    get = client("get", "print a value, byte for byte")
    get.add_argument("key")
    delete = client("delete", "delete a key")
    delete.add_argument("key")
    drain_cmd = client("drain", "move every copy off a node so it can leave (waits)")
    drain_cmd.add_argument("node")
    maintenance = client("maintenance", "put nodes in or out of maintenance")
    maintenance.add_argument("state", choices=("on", "off"))
    maintenance.add_argument("nodes", nargs="+", metavar="NODE")
    evacuate_cmd = client("evacuate", "move every copy off a node, with a progress bar")
    evacuate_cmd.add_argument("node")
    rebalance_cmd = client("rebalance", "even out shard copies across nodes")
    rebalance_cmd.add_argument(
        "--by",
        choices=("copies", "load"),
        default="copies",
        help="copies: even out copy counts (default); load: move copies off the busiest node",
    )
    add_rolling_arguments(client("rolling-restart", "restart every node in turn, keeping copies"))
    watch_cmd = client("watch", "follow live cluster events (Ctrl-C stops)")
    watch_cmd.add_argument(
        "--count",
        type=_positive,
        default=None,
        metavar="N",
        help="stop after N events (the first is hello)",
    )


def run_client_command(args: argparse.Namespace) -> int:
    """Run one client command; every failure is one line on stderr."""
    try:
        with open_client(args) as http:
            return _dispatch(args, http)
    except CommandError as exc:
        message, status = str(exc), exc.status
    except ResponseError as exc:
        message, status = error_line(exc), 1
    except Timeout as exc:
        message, status = f"the coordinator at {exc.url} did not answer in time", 1
    except TransportError as exc:
        message, status = f"cannot reach the coordinator at {exc.url}: {exc.reason}", 1
    except httpx.InvalidURL as exc:
        message, status = f"bad coordinator URL {base_url(args)!r}: {exc}", 2
    except httpx.TimeoutException:
        message, status = f"the coordinator at {base_url(args)} did not answer in time", 1
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        message, status = f"cannot reach the coordinator at {base_url(args)}: {reason}", 1
    except (ValueError, KeyError, TypeError) as exc:
        message = f"unexpected answer from the coordinator at {base_url(args)}: {exc!r}"
        status = 1
    except KeyboardInterrupt:
        message, status = "interrupted", 130
    except BrokenPipeError:
        # The reader went away (`torua nodes --json | head -c 1`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0 if args.command == "watch" else 1  # `torua watch | head` is fine
    print(f"torua: {' '.join(message.split())}", file=sys.stderr)
    return status


def _check_key(key: str) -> str:
    """The key as given, or a usage error (exit 2) before anything is sent."""
    if not key:
        raise CommandError("KEY must not be empty", status=2)
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError("KEY must be valid UTF-8", status=2) from None
    if len(raw) > MAX_KEY_BYTES:
        raise CommandError(f"KEY is {len(raw)} bytes; at most {MAX_KEY_BYTES}", status=2)
    return key


def _dispatch(args: argparse.Namespace, http: Client) -> int:
    command = args.command
    if command in ("get", "put", "delete"):
        return _data(args, http)
    if command == "drain":
        return drain(args, http, open_client)
    if command == "evacuate":
        return evacuate(args, http)
    if command == "watch":
        return watch(args, http)
    if command == "rolling-restart":
        return rolling(args)
    if command == "maintenance":
        return _maintenance(args, http)
    if command == "rebalance":
        return _rebalance(args, http)
    if command == "status":
        info = call(http, "GET", "/cluster/info").json()
        if args.json:
            print_json(info)
            return 0
        nodes = call(http, "GET", "/nodes").json()["nodes"]
        shards = call(http, "GET", "/shards").json()
        out_console().print(status_table(info, nodes, shards))
        return 0
    path = {"nodes": "/nodes", "shards": "/shards"}[command]
    data = call(http, "GET", path).json()
    if args.json:
        print_json(data)
    elif command == "nodes":
        out_console().print(nodes_table(data["nodes"]))
    else:
        out_console().print(shards_table(data))
    return 0


def _data(args: argparse.Namespace, http: Client) -> int:
    key = _check_key(args.key)
    if args.command == "get":
        value = http.get(key)
        if args.json:
            try:
                print_json({"key": args.key, "size": len(value), "value": value.decode()})
            except UnicodeDecodeError:
                print_json(
                    {
                        "key": args.key,
                        "size": len(value),
                        "value_base64": base64.b64encode(value).decode(),
                    }
                )
            return 0
        out = sys.stdout.buffer
        out.write(value)
        if sys.stdout.isatty() and not value.endswith(b"\n"):
            out.write(b"\n")  # for people only; a pipe gets the bytes exactly
        out.flush()
        return 0
    if args.command == "put":
        value = sys.stdin.buffer.read() if args.value == "-" else os.fsencode(args.value)
        http.put(key, value)
        if args.json:
            print_json({"key": args.key, "size": len(value)})
        else:
            out_console().print(
                f"stored {args.key!r} ({len(value)} bytes)", highlight=False, markup=False
            )
        return 0
    http.delete(key)
    if args.json:
        print_json({"key": args.key, "deleted": True})
    else:
        out_console().print(f"deleted {args.key!r}", highlight=False, markup=False)
    return 0


def _maintenance(args: argparse.Namespace, http: Client) -> int:
    enabled = args.state == "on"
    body = call(
        http,
        "POST",
        "/nodes/maintenance",
        json={"nodes": list(dict.fromkeys(args.nodes)), "enabled": enabled},
    ).json()
    if args.json:
        print_json(body)
    else:
        out_console().print(maintenance_table(body.get("nodes", {})))
    return 0


def _rebalance(args: argparse.Namespace, http: Client) -> int:
    response = call(http, "POST", "/rebalance", ok=(200, 202), json={"by": args.by})
    body = response.json()
    if args.json:
        print_json(body)
        return 0
    console = out_console()
    moves = body.get("moves", [])
    if moves:
        console.print(moves_table(moves))
    if not body.get("done", True) or response.status_code == 202:
        console.print(f"{len(moves)} copy moves planned; still moving", highlight=False)
    else:
        console.print(f"balanced: {len(moves)} copy moves", highlight=False)
    return 0
