"""The access log: off unless switched on, then one line per request on either server.

Off by default because it costs throughput; ``TORUA_ACCESS_LOG=1`` or
``--access-log`` (on ``coordinator``, ``node`` and ``up``) turns it on. A
line names the method, the path as sent, the status, the body bytes and the
duration, in the same shape on the native server and on hypercorn.
"""

from __future__ import annotations

import argparse
import logging
import re
from typing import Any

import httpx
import pytest
import trio

from torua.__main__ import build_parser
from torua.environment import (
    add_coordinator_flags,
    add_node_flags,
    coordinator_settings,
    node_settings,
)
from torua.errors import ConfigError
from torua.http.access_log import ACCESS_LOGGER
from torua.http.server import serve_app
from torua.up_settings import UpSettings, coordinator_argv, node_argv

LINE = re.compile(r"^127\.0\.0\.1:\d+ (\w+) (\S+) (\d{3}) (\d+|-) (\d+\.\d{3})ms$")
NODE_ENV = {"NODE_ID": "n1", "NODE_LISTEN": "127.0.0.1:0"}


def _coordinator(argv: list[str], env: dict[str, str]) -> bool:
    parser = argparse.ArgumentParser()
    add_coordinator_flags(parser)
    return coordinator_settings(parser.parse_args(argv), env).access_log


def _node(argv: list[str], env: dict[str, str]) -> bool:
    parser = argparse.ArgumentParser()
    add_node_flags(parser)
    return node_settings(parser.parse_args(argv), {**NODE_ENV, **env}).access_log


@pytest.mark.parametrize("settings", [_coordinator, _node])
def test_the_access_log_is_off_unless_the_flag_or_the_variable_turns_it_on(settings: Any) -> None:
    assert settings([], {}) is False
    assert settings([], {"TORUA_ACCESS_LOG": "0"}) is False
    assert settings([], {"TORUA_ACCESS_LOG": "1"}) is True
    assert settings(["--access-log"], {}) is True
    with pytest.raises(ConfigError, match="TORUA_ACCESS_LOG='loud'"):
        settings([], {"TORUA_ACCESS_LOG": "loud"})


def test_up_passes_the_switch_to_every_child() -> None:
    args = build_parser().parse_args(["up", "--access-log"])
    assert args.access_log is True
    assert build_parser().parse_args(["up"]).access_log is False
    on, off = UpSettings(access_log=True), UpSettings()
    url = "http://127.0.0.1:8080"
    assert "--access-log" in coordinator_argv(on, url)
    assert "--access-log" in node_argv(on, 1, 8081, [url])
    assert "--access-log" not in coordinator_argv(off, url) + node_argv(off, 1, 8081, [url])


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    status, body = (200, b"hello") if scope["path"] == "/hi" else (404, b"{}")
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _requests(server: str, access_log: bool) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:

        async def serve(task_status: trio.TaskStatus[int]) -> None:
            await serve_app(
                _app,
                "127.0.0.1",
                0,
                shutdown_trigger=stop.wait,
                task_status=task_status,
                server=server,
                access_log=access_log,
            )

        port = await nursery.start(serve)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            assert (await http.get("/hi")).status_code == 200
            assert (await http.put("/a%0Ab?x=1", content=b"abc")).status_code == 404
        stop.set()


@pytest.mark.parametrize("server", ["native", "hypercorn"])
async def test_no_access_line_by_default(server: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    await _requests(server, access_log=False)
    assert [r for r in caplog.records if r.name == ACCESS_LOGGER] == []


@pytest.mark.parametrize("server", ["native", "hypercorn"])
async def test_one_access_line_per_request_when_on(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    await _requests(server, access_log=True)
    lines = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(lines) == 2, lines
    fields = [LINE.match(line) for line in lines]
    assert all(fields), lines
    first, second = (m.groups()[:4] for m in fields if m)
    assert first == ("GET", "/hi", "200", "5")
    # the path as sent: a percent-encoded newline stays encoded, so it cannot forge a line
    assert second == ("PUT", "/a%0Ab?x=1", "404", "2")
