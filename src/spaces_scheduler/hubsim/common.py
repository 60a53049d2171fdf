"""Small helpers the simulated Hub's modules share: Hub dates, ids, errors."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]

# Stages the Hub reports; `SLEEPING` is not in huggingface_hub's enum but the Hub
# sends it, so the simulator does too.
STAGES = frozenset(
    {
        "NO_APP_FILE",
        "CONFIG_ERROR",
        "BUILDING",
        "BUILD_ERROR",
        "RUNNING",
        "RUNNING_BUILDING",
        "RUNTIME_ERROR",
        "DELETING",
        "STOPPED",
        "PAUSED",
        "SLEEPING",
        "APP_STARTING",
        "RUNNING_APP_STARTING",
    }
)
ERROR_STAGES = frozenset({"BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR"})
ASLEEP_STAGES = frozenset({"SLEEPING", "STOPPED"})
REPO_KINDS = ("space", "dataset", "model")


class HubError(Exception):
    """An error answer: status, message, and the Hub's `X-Error-Code` if any.

    A message of None sends neither `X-Error-Message` nor a JSON body, which is how
    the Hub's 5xx answers look (only a request id).
    """

    def __init__(
        self,
        status: int,
        message: str | None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


def iso_z(epoch: float) -> str:
    """Return `epoch` as the Hub writes dates: milliseconds and a `Z`."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def object_id(*parts: str) -> str:
    """Return a stable 24-hex id, the shape of the Hub's Mongo ids."""
    return hashlib.sha1(":".join(parts).encode()).hexdigest()[:24]


def fake_sha(*parts: str) -> str:
    """Return a stable 40-hex commit sha derived from `parts`."""
    return hashlib.sha1(":".join(parts).encode()).hexdigest()


def new_sha() -> str:
    """Return a fresh random 40-hex commit sha."""
    return secrets.token_hex(20)


def new_id() -> str:
    """Return a fresh random 24-hex id."""
    return secrets.token_hex(12)


def wall_clock() -> float:
    """Return the current time; a function so tests may pass their own clock."""
    return time.time()
