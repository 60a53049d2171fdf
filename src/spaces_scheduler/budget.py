"""The request budget: keep the Hub requests of a process under the quota.

Shared by every run of the process; the Hub client takes room in it before each
request, and pauses it when the Hub's `RateLimit` header says the quota is spent.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from spaces_scheduler.errors import RateLimitedError


class RequestBudget:
    """Keep the Hub requests of this process under `limit` in any `window`.

    A sliding log rather than the Hub's fixed windows: whatever the phase of the
    Hub's window, a sliding limit never lets more than `limit` requests into
    one. The Hub's own `RateLimit` header, when it says the quota is spent,
    pauses every caller until the reset it announces.
    """

    def __init__(
        self,
        limit: int,
        window: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.reserve = 0  # requests that may be in flight at once
        self._clock = clock
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self, deadline: float) -> None:
        """Wait until one more request fits; raise RateLimitedError at `deadline`."""
        while True:
            wait = self._try_take()
            if wait <= 0:
                return
            if self._clock() + wait > deadline:
                raise RateLimitedError(
                    f"the request budget of {self.limit} per {self.window:g}s "
                    f"is spent; room again in {wait:.0f}s",
                    retry_after=wait,
                    status=None,
                )
            time.sleep(min(wait, 1.0))

    def pause_until_reset(self, seconds: float) -> None:
        """Hold every request back for `seconds` (the Hub said the quota is spent)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _try_take(self) -> float:
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()

            if now < self._paused_until:
                return self._paused_until - now
            if len(self._sent) >= self.limit:
                return self._sent[0] + self.window - now
            self._sent.append(now)
            return 0.0
