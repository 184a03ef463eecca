"""Token buckets per client address, driven by a stepped clock (no sleeping)."""

from __future__ import annotations

import pytest

from lendchain.node.ratelimit import RateLimiter, TokenBucket, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait():
    bucket = TokenBucket(rate_per_s=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token comes back every 1/rate s
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)


def test_a_bucket_refills_to_its_burst_and_no_further():
    bucket = TokenBucket(rate_per_s=10.0, burst=2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert [bucket.take(3600.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]


def test_a_clock_stepping_back_refills_nothing():
    bucket = TokenBucket(rate_per_s=1.0, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)
    assert bucket.take(5.5) == pytest.approx(0.5)


def test_each_client_address_has_its_own_bucket():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=2, clock=clock)
    assert [limiter.check("10.0.0.1") for _ in range(2)] == [0.0, 0.0]
    assert limiter.check("10.0.0.1") == pytest.approx(1.0)
    assert limiter.check("10.0.0.2") == 0.0  # another client is not starved by the first
    clock.now += 1.0
    assert limiter.check("10.0.0.1") == 0.0
    assert limiter.check("10.0.0.1") == pytest.approx(1.0)


def test_the_table_of_clients_is_bounded_by_forgetting_the_least_recent():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock, max_clients=3)
    for client in ("a", "b", "c"):
        limiter.check(client)
    limiter.check("a")  # "a" is now the most recently seen; "b" the least
    limiter.check("d")
    assert len(limiter) == 3
    assert limiter.check("a") > 0  # remembered: still empty
    assert limiter.check("b") == 0.0  # forgotten: a fresh, full bucket


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 5), (1.0, 0)])
def test_a_limiter_refuses_a_rate_or_burst_that_would_refuse_everything(rate, burst):
    with pytest.raises(ValueError, match="rate_per_s > 0 and burst >= 1"):
        RateLimiter(rate, burst)


@pytest.mark.parametrize(("wait", "header"), [(0.001, "1"), (1.0, "1"), (1.2, "2"), (59.9, "60")])
def test_retry_after_is_whole_seconds_rounded_up(wait, header):
    assert retry_after_header(wait) == header
