"""BoundedCache: bounded, oldest out first, and a hit does not make an entry young again."""

import pytest

from lendchain.bounded import BoundedCache


def test_past_its_limit_the_oldest_entry_goes_first_and_a_hit_does_not_refresh_it():
    cache: BoundedCache[str, int] = BoundedCache(3)
    for number, key in enumerate("abc"):
        cache.put(key, number)
    assert cache.get("a") == 0 and "a" in cache  # a hit ...
    cache.put("b", 10)  # ... and a second put keep an entry's age
    cache.put("d", 3)
    assert list(cache) == ["b", "c", "d"] and cache.get("b") == 10
    assert cache.get("a") is None and "a" not in cache and len(cache) == 3


def test_a_cache_with_no_room_is_refused():
    with pytest.raises(ValueError, match="at least 1 entry"):
        BoundedCache(0)
