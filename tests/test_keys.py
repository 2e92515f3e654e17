from __future__ import annotations

import pytest

from redline.connection import AsyncClient
from redline.errors import CrossSlotError
from redline.keys import derived, hash_slot, hash_tag, require_same_slot, tagged


def test_hash_tag_follows_redis_rules() -> None:
    assert hash_tag("orders") == "orders"
    assert hash_tag("{demo:mpush}:in") == "demo:mpush"
    assert hash_tag("a{}b") == "a{}b"  # an empty tag hashes the whole name
    assert hash_slot("foo") == 12182  # the value CLUSTER KEYSLOT foo gives


def test_derived_keys_share_the_slot_of_their_queue() -> None:
    assert derived("orders", "dead") == "{orders}:dead"
    assert derived("{demo:mpush}:in", "dead") == "{demo:mpush}:in:dead"
    assert tagged("{x}y") == "{x}y"
    for name in ("orders", "{demo:mpush}:in", "jobs:high"):
        assert hash_slot(derived(name, "inflight")) == hash_slot(name)


def test_cross_slot_keys_are_refused_with_the_fix() -> None:
    with pytest.raises(CrossSlotError) as err:
        require_same_slot("mpush", {"in": "demo:in", "out": "demo:out"})
    assert "in='demo:in'" in str(err.value) and "hash tag" in str(err.value)
    require_same_slot("mpush", {"in": "{demo}:in", "out": "{demo}:out"})


async def test_slots_agree_with_the_cluster(acluster: AsyncClient) -> None:
    for key in ("foo", "{demo:mpush}:in", "orders", derived("orders", "x")):
        assert await acluster.cluster_keyslot(key) == hash_slot(key)  # type: ignore[union-attr]
