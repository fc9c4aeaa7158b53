"""The simulator's promises: a seed replays exactly, and it finds a planted bug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .run import SimConfig, run_seed

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.sim


def _replay(seed: int, dump: Path) -> bytes:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.sim",
            "--replay",
            str(seed),
            "--seconds",
            "20",
            "--dump",
            str(dump),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return dump.read_bytes()


def test_the_same_seed_gives_the_same_history_byte_for_byte(tmp_path: Path) -> None:
    first = _replay(11, tmp_path / "first")
    second = _replay(11, tmp_path / "second")
    other = _replay(12, tmp_path / "other")
    assert first.count(b"\n") > 100  # faults and a real history, not an empty run
    assert first == second
    assert first != other


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
    assert any("write" in op for op in result.shortest)
    assert any("read" in op for op in result.shortest)
    assert f"key {key}" in failure or f"'{key}'" in failure
