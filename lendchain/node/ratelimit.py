"""Token buckets, and per-client rate limits for the node's API: one bucket per client address.

(``network_link.InboundBudget`` uses the same buckets for what each member may send.)

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; each
limited request takes one, and a request that finds less than one token is
refused with the seconds until one is there (the API's Retry-After). The clock
is injected, so tests step time instead of sleeping.

Clients are keyed by the address the connection comes from. Behind a reverse
proxy every request shares the proxy's address (forwarded headers are not
trusted); and per-address limits do not stop an attacker with many
addresses: they keep one client from starving the others. The table of
buckets is bounded: past ``max_clients`` the least recently seen client is
forgotten, which costs it nothing but a fresh, full bucket.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CLIENTS = 10_000


class TokenBucket:
    __slots__ = ("rate_per_s", "burst", "tokens", "updated")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)  # a clock stepping back refills nothing
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_s)
        self.updated = now

    def take(self, now: float, amount: float = 1.0) -> float:
        """Take ``amount`` tokens: 0.0 when they were there, else (taking nothing) the seconds until."""
        self.refill(now)
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.rate_per_s

    def charge(self, now: float, amount: float) -> float:
        """Take ``amount`` tokens even into debt; the seconds until the debt is paid back."""
        self.refill(now)
        self.tokens -= amount
        return max(0.0, -self.tokens / self.rate_per_s)


class RateLimiter:
    """Token buckets by client address, created full on a client's first request."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"a rate limit needs rate_per_s > 0 and burst >= 1, not {rate_per_s}, {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, client: str) -> float:
        """Charge one request to ``client``: 0.0 if allowed, else seconds until it would be."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self.rate_per_s, self.burst, now)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(wait_s: float) -> str:
    """Retry-After takes whole seconds: round up, and never say 0 to a refused client."""
    return str(max(1, math.ceil(wait_s)))
