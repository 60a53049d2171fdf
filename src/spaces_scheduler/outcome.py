"""How a run ended: the outcome record every part of the product shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class OutcomeKind(StrEnum):
    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"
    TIMED_OUT = "timed-out"
    ABANDONED = "abandoned"

    @property
    def is_failure(self) -> bool:
        """Whether this outcome makes a command exit 1."""
        return self in (OutcomeKind.FAILED, OutcomeKind.TIMED_OUT)


@dataclass(frozen=True)
class Outcome:
    """The end of one run.

    `reason` is the skip reason (`unchanged`, `busy`, `min-interval`, ...) or the
    Hub's failure message; `summary` is the short text a person reads after the
    outcome (`RUNNING after 41.2s`, `triggered`). `stages` lists the distinct
    stages seen in order, `requests` the Hub requests the run spent, and
    `log_tail` the last build-log lines of a failed build.
    """

    kind: OutcomeKind
    reason: str = ""
    summary: str = ""
    stages: tuple[str, ...] = ()
    duration: float = 0.0
    requests: int = 0
    log_tail: tuple[str, ...] = field(default=())
    escalated: bool = False

    @classmethod
    def skipped(cls, reason: str, *, summary: str = "") -> Outcome:
        return cls(OutcomeKind.SKIPPED, reason=reason, summary=summary)

    def line(self) -> str:
        """Return the words after the outcome on a run's line."""
        words = [self.kind.value]
        if self.kind is OutcomeKind.SKIPPED and self.reason:
            words[0] = f"skipped: {self.reason}"
        elif self.reason:
            words.append(self.reason)
        if self.summary:
            words.append(self.summary)
        return "  ".join(words)
