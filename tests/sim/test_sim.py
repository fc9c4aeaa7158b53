"""The simulator's promises: a seed replays exactly, and it finds a planted bug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .run import SimConfig, run_seed

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.sim


def _sim(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.sim", "--seconds", "20", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_same_seed_gives_the_same_history_byte_for_byte(tmp_path: Path) -> None:
    """A seed replayed alone in a fresh process, and run by a worker right after
    another seed, gives the same faults and the same history (seed 11 runs three
    HA coordinators, seed 12 one)."""
    _sim("--replay", "12", "--dump", str(tmp_path / "alone.txt"))
    batch = tmp_path / "batch"
    _sim(
        "--seeds",
        "2",
        "--start",
        "11",
        "--workers",
        "1",
        "--no-regressions",
        "--dump-dir",
        str(batch),
    )
    alone = (tmp_path / "alone.txt").read_bytes()
    assert alone.count(b"\n") > 100  # faults and a real history, not an empty run
    assert (batch / "12.txt").read_bytes() == alone
    assert (batch / "11.txt").read_bytes() != alone


def test_a_write_acknowledged_without_its_second_copy_is_found() -> None:
    for seed in range(300):
        result = run_seed(SimConfig(seed, seconds=30, plant="ack-without-second-copy"))
        if not result.ok:
            break
    else:
        raise AssertionError("300 seeds did not find the planted bug")
    failure = next(f for f in result.failures if "not linearizable" in f)
    key = failure.split("'")[1]
    assert result.shortest, failure
    assert any(" write " in op or " delete " in op for op in result.shortest)
    assert any("read" in op for op in result.shortest)
    assert f"key {key}" in failure or f"'{key}'" in failure
