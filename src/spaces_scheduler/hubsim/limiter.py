"""A fixed-window rate limiter per token, with the Hub's `RateLimit` headers.

Like the Hub, windows are fixed (not sliding) and there are two buckets: `api` for
`/api/...` and `resolvers` for any path with `/resolve/`, whose quota is larger
(`resolver_factor` times the API quota). Windows start when the simulator starts.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from spaces_scheduler.hubsim.common import Clock


@dataclass(frozen=True)
class Verdict:
    """The outcome of counting one request."""

    allowed: bool
    bucket: str
    remaining: int
    reset: int
    quota: int
    window: int

    def headers(self, *, retry_after: int | None = None) -> dict[str, str]:
        """Return the `RateLimit` pair; `retry_after` forces r=0;t=retry_after."""
        remaining, reset = self.remaining, self.reset
        if retry_after is not None:
            remaining, reset = 0, retry_after
        return {
            "RateLimit": f'"{self.bucket}";r={remaining};t={reset}',
            "RateLimit-Policy": (
                f'"fixed window";"{self.bucket}";q={self.quota};w={self.window}'
            ),
        }


class RateLimiter:
    """Count requests per (token, bucket) in fixed windows."""

    def __init__(
        self, *, quota: int, window: float, resolver_factor: int, clock: Clock
    ) -> None:
        self.quota = quota
        self.window = window
        self.resolver_factor = max(1, resolver_factor)
        self._clock = clock
        self._origin = clock()
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def bucket_of(self, path: str) -> str:
        return "resolvers" if "/resolve/" in path else "api"

    def hit(self, key: str, path: str) -> Verdict:
        """Count one request by `key` on `path` and say whether it may pass."""
        bucket = self.bucket_of(path)
        now = self._clock()
        index = self._index(now)

        with self._lock:
            seen_index, count = self._counts.get((key, bucket), (index, 0))
            count = count + 1 if seen_index == index else 1
            self._counts[(key, bucket)] = (index, count)

        return self._verdict(bucket, count, now)

    def peek(self, path: str) -> Verdict:
        """Return the verdict of a request that is not counted (full quota)."""
        return self._verdict(self.bucket_of(path), 0, self._clock())

    def _index(self, now: float) -> int:
        return int((now - self._origin) // self.window)

    def _verdict(self, bucket: str, count: int, now: float) -> Verdict:
        quota = self.quota * (self.resolver_factor if bucket == "resolvers" else 1)
        window_end = self._origin + (self._index(now) + 1) * self.window

        # The headers carry whole seconds; round up so `t=0` never means "now".
        return Verdict(
            allowed=count <= quota,
            bucket=bucket,
            remaining=max(0, quota - count),
            reset=max(1, math.ceil(window_end - now)),
            quota=quota,
            window=max(1, math.ceil(self.window)),
        )
