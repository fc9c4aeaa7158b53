"""The node path of a key: every key reaches the node as itself, whatever it holds.

``key_path`` skips percent-encoding for keys made only of characters encoding
leaves alone; these tests hold that shortcut to the full rule.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from torua.coordinator.nodes.client import key_path


def _encoded(key: str) -> str:
    return quote(key, safe="").replace(".", "%2E")


@given(st.text(min_size=1), st.integers(min_value=0, max_value=4095))
def test_any_key_is_encoded_as_the_full_rule_says(key: str, shard_id: int) -> None:
    path = key_path(shard_id, key)
    assert path == f"/shard/{shard_id}/store/{_encoded(key)}"
    assert unquote(path.removeprefix(f"/shard/{shard_id}/store/")) == key


@given(st.text(alphabet="abcXYZ019_-~./% ?#é", min_size=1))
def test_keys_near_the_plain_alphabet(key: str) -> None:
    assert key_path(3, key) == f"/shard/3/store/{_encoded(key)}"


def test_dots_slashes_and_unicode_never_pass_plain() -> None:
    assert key_path(0, "a.b") == "/shard/0/store/a%2Eb"
    assert key_path(0, "..") == "/shard/0/store/%2E%2E"
    assert key_path(0, "a/b") == "/shard/0/store/a%2Fb"
    assert key_path(0, "ключ") == "/shard/0/store/" + quote("ключ", safe="")
    assert key_path(7, "user-42_x~") == "/shard/7/store/user-42_x~"
