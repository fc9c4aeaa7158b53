"""The Jepsen run as a pytest test (``pytest -m jepsen``), short and with a fixed seed.

Its own nox session (``nox -s jepsen``, which CI runs) rather than part of
``tests``: a run takes about a minute. TORUA_JEPSEN_SECONDS and
TORUA_JEPSEN_SEED override the length and the seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .runner import RunOptions, run

pytestmark = pytest.mark.jepsen


async def test_histories_are_linearizable_under_faults(tmp_path: Path) -> None:
    options = RunOptions(
        seed=int(os.environ.get("TORUA_JEPSEN_SEED", "11")),
        seconds=float(os.environ.get("TORUA_JEPSEN_SECONDS", "30")),
    )
    result = await run(options, tmp_path)
    print(result.report())
    assert not result.violations, result.report()
    assert result.healed, "the cluster did not return to green after healing"
    assert not result.unread, f"keys unreadable after healing: {result.unread}"
