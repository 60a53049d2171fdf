"""Scripted faults: matched by exact path or by Space, used up in order.

A fault matches a request when its `path` equals the request's path (without the
query string), or when its `space` names the Space the request is about, and its
`method` (if given) is the request's. A fault with neither `path` nor `space`
matches every Hub API request. The first matching fault with uses left applies;
`times = 0` never runs out.
"""

from __future__ import annotations

import threading
from typing import Any


def space_of(path: str) -> str | None:
    """Return the Space id a Hub path is about, if any."""
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[:2] == ["api", "spaces"]:
        return f"{parts[2]}/{parts[3]}"
    if len(parts) >= 3 and parts[0] == "spaces" and parts[1] != "":
        return f"{parts[1]}/{parts[2]}"
    return None


class FaultBook:
    """The faults still to apply, in the order they were added."""

    def __init__(self, faults: list[dict[str, Any]]) -> None:
        self._lock = threading.Lock()
        self._faults = [dict(fault, used=0) for fault in faults]

    def add(self, fault: dict[str, Any]) -> None:
        with self._lock:
            self._faults.append(dict(fault, used=0))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(fault) for fault in self._faults]

    def take(self, method: str, path: str) -> dict[str, Any] | None:
        """Return the fault this request meets and count its use, or None."""
        with self._lock:
            for fault in self._faults:
                if _left(fault) and _matches(fault, method, path):
                    fault["used"] += 1
                    return dict(fault)
        return None


def _left(fault: dict[str, Any]) -> bool:
    times, used = int(fault["times"]), int(fault["used"])
    return times == 0 or used < times


def _matches(fault: dict[str, Any], method: str, path: str) -> bool:
    if "method" in fault and fault["method"] != method:
        return False
    if "path" in fault and fault["path"] != path:
        return False
    return "space" not in fault or fault["space"] == space_of(path)
