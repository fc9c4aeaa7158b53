"""The cluster token: enforced on coordinator and nodes, used between
them, never logged; /health stays open."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .procs import ProcessGroup, wait_until

pytestmark = pytest.mark.e2e

TOKEN = "s3cret-token-value-for-tests"


async def test_token_is_required_used_between_processes_and_never_logged(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    env = {
        "TORUA_TOKEN": TOKEN,
        "HEALTH_CHECK_INTERVAL": "1s",
        "TORUA_LOG_LEVEL": "DEBUG",
        "TORUA_MEMORY": "1",
    }
    async with ProcessGroup() as group:
        coordinator = await group.start(
            "coordinator", ["coordinator", "--listen", "127.0.0.1:0"], env, stderr_to=log
        )
        node = await group.start(
            "n1",
            ["node", "--id", "n1", "--listen", "127.0.0.1:0", "--coordinator", coordinator.url],
            env,
            stderr_to=log,
        )
        good = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=10) as http:

            async def registered_and_healthy() -> bool:
                nodes = (await http.get("/nodes", headers=good)).json()["nodes"]
                return [n["status"] for n in nodes] == ["healthy"]

            # Registration, probes and assignments all needed the token to get here.
            await wait_until(registered_and_healthy, within=10, what="n1 healthy")
            assert (await http.get("/health")).status_code == 200
            for route in ("/nodes", "/cluster/info", "/data/k", "/openapi.json"):
                missing = await http.get(route)
                assert missing.status_code == 401, route
                assert missing.json()["error"] == "unauthorized"
                wrong = await http.get(route, headers={"Authorization": "Bearer nope"})
                assert wrong.status_code == 403, route
            async with httpx.AsyncClient(
                base_url=coordinator.url, timeout=10, cookies={"torua_token": TOKEN}
            ) as browser:
                assert (await browser.get("/nodes")).status_code == 200
            assert (await http.put("/data/k", content=b"v", headers=good)).status_code == 204
            assert (await http.get("/data/k", headers=good)).content == b"v"
            async with httpx.AsyncClient(base_url=node.url, timeout=10) as direct:
                assert (await direct.get("/health")).status_code == 200
                assert (await direct.get("/info")).status_code == 401
                assert (await direct.get("/info", headers=good)).status_code == 200
    text = log.read_text()
    assert "registered" in text  # the log was captured at all
    assert TOKEN not in text
