"""BoundedCache: bounded, oldest out first, and a hit does not make an entry young again."""

import pytest

from lendchain.bounded import BoundedCache, ByteBoundedCache


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


def test_a_byte_bounded_cache_drops_the_oldest_past_its_byte_budget_and_never_keeps_an_oversize_key():
    cache: ByteBoundedCache[int] = ByteBoundedCache(10, max_bytes=10)
    for number, key in enumerate((b"aaaa", b"bbbb", b"cc")):
        cache.put(key, number)
    assert (list(cache), cache.bytes) == ([b"aaaa", b"bbbb", b"cc"], 10)
    cache.put(b"bbbb", 7)  # a second put keeps an entry's age and counts its bytes once
    assert (list(cache), cache.bytes, cache[b"bbbb"]) == ([b"aaaa", b"bbbb", b"cc"], 10, 7)
    cache.put(b"ddd", 3)  # 13 bytes: the oldest goes
    assert (list(cache), cache.bytes) == ([b"bbbb", b"cc", b"ddd"], 9)
    cache.put(b"x" * 11)  # larger than the whole budget: not kept, nothing evicted for it
    assert (list(cache), cache.bytes) == ([b"bbbb", b"cc", b"ddd"], 9)
    counted: ByteBoundedCache[None] = ByteBoundedCache(2, max_bytes=100)  # the count bound holds too
    for key in (b"a", b"b", b"c"):
        counted.put(key)
    assert (list(counted), counted.bytes) == ([b"b", b"c"], 2)


def test_a_byte_bounded_cache_with_no_byte_budget_is_refused():
    with pytest.raises(ValueError, match="at least 1 byte"):
        ByteBoundedCache(1, max_bytes=0)


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_put_all_leaves_what_a_put_of_each_key_leaves(limit):
    keys = ["a", "b", "a", "c", "d", "e"]
    one_by_one: BoundedCache[str, int] = BoundedCache(limit)
    at_once: BoundedCache[str, int] = BoundedCache(limit)
    for cache in (one_by_one, at_once):
        cache.put("z", 0)
    for key in keys:
        one_by_one.put(key, 7)
    at_once.put_all(keys, 7)
    assert list(at_once.items()) == list(one_by_one.items())


def test_put_all_into_a_byte_bounded_cache_counts_every_key():
    one_by_one: ByteBoundedCache[None] = ByteBoundedCache(10, max_bytes=6)
    at_once: ByteBoundedCache[None] = ByteBoundedCache(10, max_bytes=6)
    keys = [b"aa", b"bb", b"aa", b"ccc", b"x" * 7]
    for key in keys:
        one_by_one.put(key)
    at_once.put_all(keys)
    assert (list(at_once), at_once.bytes) == (list(one_by_one), one_by_one.bytes) == ([b"bb", b"ccc"], 5)


@pytest.mark.parametrize("limit", [64, 130, 1000])
def test_past_its_limit_a_cache_drops_the_oldest_down_to_its_slack_at_once_and_keeps_the_newest(limit):
    cache: BoundedCache[int, int] = BoundedCache(limit)
    slack = limit // 64
    for number in range(limit + 1):
        cache.put(number, number)
    assert list(cache) == list(range(slack + 1, limit + 1)) and len(cache) == cache.keep == limit - slack
    for number in range(limit + 1, limit + 1 + slack):  # the slack fills without a drop
        cache.put(number, number)
    assert list(cache) == list(range(slack + 1, limit + 1 + slack)) and len(cache) == limit
    for number in range(limit + 1 + slack, 5 * limit):  # never more than ``limit``; always the newest
        cache.put(number, number)
        assert len(cache) <= limit and next(reversed(cache)) == number
    assert list(cache.items()) == [(n, n) for n in range(5 * limit - len(cache), 5 * limit)]


def test_a_full_byte_bounded_cache_drops_at_once_and_counts_the_bytes_it_drops():
    cache: ByteBoundedCache[int] = ByteBoundedCache(128, max_bytes=10_000)
    keys = [b"k" * (1 + number % 7) + number.to_bytes(2, "big") for number in range(1000)]
    for number, key in enumerate(keys):
        cache.put(key, number)
        assert len(cache) <= 128 and cache.bytes == sum(map(len, cache)) and cache[key] == number
    assert list(cache) == keys[-len(cache) :]
