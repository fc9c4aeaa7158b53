"""The one definition of a green cluster: the state says green and no shard is busy."""

from __future__ import annotations

from torua.green import is_green


def test_green_needs_the_state_and_every_shard_active() -> None:
    active = [{"shard_id": 0, "state": "active"}, {"shard_id": 1, "state": "active"}]
    assert is_green({"cluster_state": "green"}, active)
    assert not is_green({"cluster_state": "yellow"}, active)
    relocating = [{"shard_id": 0, "state": "active"}, {"shard_id": 1, "state": "relocating"}]
    assert not is_green({"cluster_state": "green"}, relocating)
    assert not is_green({}, active)  # an answer without a state is not green
