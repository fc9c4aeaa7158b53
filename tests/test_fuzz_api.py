"""Schemathesis against both OpenAPI documents: no 500, responses match the
schema, and a 4xx changes no state.

Each service runs as a real process on loopback. ``POST /register`` is left
out of fuzzing on purpose: a generated node address could point anywhere, and
the coordinator would then probe it; registration is covered by the
hand-written bad-input tests. ``GET /events`` streams forever and is left out
too. TORUA_FUZZ_EXAMPLES sets examples per operation and mode (default 25: over
1,000 requests per run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("TORUA_FUZZ_EXAMPLES", "25"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


class Service:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "torua", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "TORUA_LOG_LEVEL": "ERROR", **env},
            start_new_session=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("READY "):
                self.url = line.split()[1]
                return
        raise AssertionError(f"{argv[0]} exited with {self.process.wait()} before READY")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert (
            not psutil.pid_exists(self.process.pid)
            or psutil.Process(self.process.pid).status() == psutil.STATUS_ZOMBIE
        )


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, Service]]:
    env = {"HEALTH_CHECK_INTERVAL": "1s", "TORUA_MEMORY": "1"}
    started: dict[str, Service] = {}
    try:
        started["coordinator"] = Service(["coordinator", "--listen", "127.0.0.1:0"], env)
        for node_id in ("n1", "n2"):
            started[node_id] = Service(
                [
                    "node",
                    "--id",
                    node_id,
                    "--listen",
                    "127.0.0.1:0",
                    "--coordinator",
                    started["coordinator"].url,
                ],
                env,
            )
        # A node of its own for node fuzzing, registered nowhere (port 9 is discard).
        started["lone"] = Service(
            [
                "node",
                "--id",
                "lone",
                "--listen",
                "127.0.0.1:0",
                "--coordinator",
                "http://127.0.0.1:9",
            ],
            env,
        )
        _wait_green(started["coordinator"].url)
        yield started
    finally:
        for service in reversed(list(started.values())):
            service.stop()


def _wait_green(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/cluster/info").json()["cluster_state"] == "green":
            return
        time.sleep(0.1)
    raise AssertionError("cluster not green")


@pytest.fixture(scope="module")
def coordinator_schema(services: dict[str, Service]) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(services["coordinator"].url + "/openapi.json")
    return schema.exclude(path="/register").exclude(path="/events")


@pytest.fixture(scope="module")
def node_schema(services: dict[str, Service]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(services["lone"].url + "/openapi.json")


def _snapshot(http: httpx.Client) -> tuple:
    """What a 4xx must leave unchanged: membership, placement, config, one value."""
    nodes = [
        {
            k: v
            for k, v in n.items()
            if k not in ("last_health_check", "consecutive_failures", "checks")
        }
        for n in http.get("/nodes").json()["nodes"]
    ]
    shards = http.get("/shards").json()
    for shard in shards["shards"]:
        shard.pop("rate")  # a measurement of traffic, the fuzzer's own included
    config = http.get("/cluster/config").json()
    probe = http.get("/data/fuzz-sentinel")
    return nodes, shards, config, probe.status_code, probe.content


def _check(case: schemathesis.Case, url: str, snapshot) -> None:
    before = snapshot()
    started = time.monotonic()
    response = case.call(base_url=url, timeout=30)
    if os.environ.get("TORUA_FUZZ_TRACE"):
        print(
            f"{time.monotonic() - started:6.3f}s {response.status_code} {case.method} "
            f"{case.formatted_path} {case.body!r:.120}",
            file=sys.stderr,
        )
    where = f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    assert response.status_code not in (500, 502), where
    assert "Traceback" not in response.text
    if response.status_code == 503:
        # Legitimate, and documented: earlier fuzzed requests may have made every copy
        # unreachable (a probe path that 404s marks all nodes unhealthy). It must say so
        # the documented way: the no-copy error with a Retry-After.
        headers = {name.lower(): value for name, value in response.headers.items()}
        assert headers.get("retry-after"), where
        assert response.json()["error"] in ("no_copy", "incomplete_shard"), where
    # positive_data_acceptance is left out: rules such as "the timeout is shorter than
    # the interval" or "this node can take the copy" cannot be said in JSON Schema, so
    # schema-valid requests are rightly refused with a 400 or 409 at times.
    # not_a_server_error is replaced by the 500/502/503 rules above.
    case.validate_response(response, excluded_checks=[positive_data_acceptance, not_a_server_error])
    if 400 <= response.status_code < 500:
        assert snapshot() == before, (
            f"{case.method} {case.formatted_path} -> {response.status_code} changed state"
        )


def _fuzz(schema: schemathesis.BaseSchema, url: str, snapshot) -> int:
    """Every operation, valid and invalid data; returns how many requests were made."""
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ_SETTINGS
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                _check(case, url, snapshot)

            try:
                run()
            except Unsatisfiable:
                # No invalid input exists for an operation without parameters or body.
                assert mode is GenerationMode.NEGATIVE
    return calls


def test_coordinator_api_fuzz(
    coordinator_schema: schemathesis.BaseSchema, services: dict[str, Service]
) -> None:
    url = services["coordinator"].url
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.put("/data/fuzz-sentinel", content=b"still here").status_code == 204
        calls = _fuzz(coordinator_schema, url, lambda: _snapshot(http))
    print(f"coordinator: {calls} fuzzed requests")
    assert calls >= EXAMPLES


def test_node_api_fuzz(node_schema: schemathesis.BaseSchema, services: dict[str, Service]) -> None:
    url = services["lone"].url
    with httpx.Client(base_url=url, timeout=30) as http:

        def snapshot() -> tuple:
            info = http.get("/info").json()
            info.pop("uptime")
            return (info,)

        calls = _fuzz(node_schema, url, snapshot)
    print(f"node: {calls} fuzzed requests")
    assert calls >= EXAMPLES
