"""The bench's summaries: top frames of py-spy's stacks, and every rate against the ceiling.

A reader of results.md compares Torua's rates with the ceiling server measured
in the same run, and reads the profile as the functions that spent the most
CPU themselves; these pin both down on small inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torua.bench.profile import summary_text, top_frames
from torua.bench.report import write_results
from torua.bench.targets import targets

COLLAPSED = """\
<module> (torua/__main__.py:5);run (trio/_core/_run.py:10);send_now (torua/http/direct_io.py:34) 6
<module> (torua/__main__.py:5);run (trio/_core/_run.py:10);send_now (torua/http/direct_io.py:36) 2
<module> (torua/__main__.py:5);run (trio/_core/_run.py:12) 1
<module> (torua/__main__.py:5);handle (torua/node/store_route.py:99) 1
not a sample line
"""


def test_top_frames_are_self_time_by_function() -> None:
    samples, frames = top_frames(COLLAPSED, top=2)
    assert samples == 10
    # two lines of one function count together; the file is named without its directory
    assert frames == [("send_now (direct_io.py)", 8), ("run (_run.py)", 1)]


def _run(target: str, method: str, c: int, rps: float, p99: float = 5.0) -> dict[str, Any]:
    return {
        "target": target,
        "method": method,
        "concurrency": c,
        "keys": 1000,
        "rps": rps,
        "p50_ms": 1.0,
        "p99_ms": p99,
        "non_2xx": 0,
        "socket_errors": 0,
        "timeouts": 0,
        "cpu_cores": {},
    }


def _results() -> dict[str, Any]:
    bulk = {"keys": 20000, "seconds": 0.5, "keys_per_s": 40000.0, "errors": {}, "timed_out": False}
    section = {
        "config": "R=2 durable",
        "runs": [
            _run("coordinator", "GET", 32, 2000.0, p99=25.0),
            _run("node n1", "GET", 32, 6000.0),
            _run("ceiling", "GET", 32, 10000.0),
        ],
        "bulk": {"put": bulk, "get": bulk},
        "peak_rss_mb": {"coordinator": 60.0},
        "profiles": [
            {
                "config": "R=2 durable",
                "load": "node n1 GET",
                "process": "n1",
                "svg": "bench/results/x.svg",
                "samples": 10,
                "top": [{"function": "send_now (direct_io.py)", "self_pct": 80.0}],
            }
        ],
    }
    return {"throughput": [section]}


def test_targets_read_rates_against_the_ceiling_of_the_same_run() -> None:
    rows = {t["target"]: t for t in targets(_results())}
    node = rows["node GET c=32 / ceiling GET c=32 (R=2 durable)"]
    assert node["measured"].startswith("0.60") and node["result"] is True
    coordinator = rows["coordinator GET c=32 / ceiling GET c=32 (R=2 durable)"]
    assert coordinator["measured"].startswith("0.20") and coordinator["result"] is True
    assert rows["p99 of every c=32 row (R=2 durable)"]["result"] is False  # 25 ms
    assert rows["bulk put keys/s through the coordinator (R=2 durable)"]["result"] is False


def test_results_md_has_a_ceiling_column_and_the_top_frames(tmp_path: Path) -> None:
    results = {
        "command": "python -m torua.bench",
        "started": "now",
        "quick": True,
        "duration_s": 1.0,
        "machine": {},
        "problems": [],
        **_results(),
    }
    _, md_path = write_results(results, tmp_path)
    md = md_path.read_text()
    assert "| x ceiling |" in md
    assert "| R=2 durable | node n1 | GET | 32 | 1,000 | 6,000.0 | 1.0 | 5.0 | 0.60 |" in md
    assert "| R=2 durable | put | 20,000 | 0.5 | 40,000.0 | 4.00 | 0 |" in md  # bulk x ceiling
    assert "| send_now (direct_io.py) | 80.0 |" in md
    text = summary_text(results["throughput"][0]["profiles"])
    assert "80.0%  send_now (direct_io.py)" in text
