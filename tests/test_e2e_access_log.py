"""The access log of a real process: silent by default, one line per request when on.

``up`` runs its children at TORUA_LOG_LEVEL=WARNING, so the switch must show
its lines whatever the general log level.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from .procs import ProcessGroup

pytestmark = pytest.mark.e2e

QUIET = {"TORUA_LOG_LEVEL": "WARNING"}


async def _coordinator_log(
    group: ProcessGroup, log: Path, env: dict[str, str], *args: str
) -> list[str]:
    proc = await group.start(
        "coordinator",
        ["coordinator", "--listen", "127.0.0.1:0", "--memory", *args],
        env,
        stderr_to=log,
    )
    async with httpx.AsyncClient(base_url=proc.url, timeout=5) as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/data/nothing-here")).status_code == 503  # no node yet
    assert await group.stop(proc) == 0
    text = await trio.Path(log).read_text()
    return [line for line in text.splitlines() if "torua.http.access" in line]


@pytest.mark.parametrize("server", ["native", "hypercorn"])
async def test_access_log_off_by_default_and_on_when_asked(server: str, tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        silent = await _coordinator_log(group, tmp_path / "off.log", QUIET, "--server", server)
        by_env = await _coordinator_log(
            group, tmp_path / "env.log", {**QUIET, "TORUA_ACCESS_LOG": "1"}, "--server", server
        )
        by_flag = await _coordinator_log(
            group, tmp_path / "flag.log", QUIET, "--server", server, "--access-log"
        )
    assert silent == []
    for lines in (by_env, by_flag):
        assert len(lines) == 2, lines
        assert " GET /health 200 " in lines[0] and lines[0].endswith("ms")
        assert " GET /data/nothing-here 503 " in lines[1]
