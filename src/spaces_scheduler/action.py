"""What a run does to a Space: restart, rebuild, pause, wake, or a setting."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spaces_scheduler.durations import parse_duration

# A Space variable name, as the Hub's settings page accepts it.
_VARIABLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ActionKind(StrEnum):
    RESTART = "restart"
    REBUILD = "rebuild"
    PAUSE = "pause"
    WAKE = "wake"
    HARDWARE = "hardware"
    SLEEP_TIME = "sleep_time"
    VARIABLES = "variables"


SIMPLE_ACTIONS = ("restart", "rebuild", "pause", "wake")
ALLOWED_ACTIONS = (
    "restart, rebuild, pause, wake, { hardware = FLAVOR }, "
    '{ sleep_time = DURATION | "never" } or { variables = { KEY = "value" } }'
)


@dataclass(frozen=True)
class Action:
    """One action; `hardware`, `sleep_seconds` and `variables` go with their kind.

    `sleep_seconds` is -1 for "never sleep", as the Hub writes it.
    """

    kind: ActionKind
    hardware: str | None = None
    sleep_seconds: int | None = None
    variables: tuple[tuple[str, str], ...] = field(default=())

    def __str__(self) -> str:
        if self.kind is ActionKind.HARDWARE:
            return f"hardware={self.hardware}"
        if self.kind is ActionKind.SLEEP_TIME:
            never = self.sleep_seconds == -1
            return f"sleep_time={'never' if never else f'{self.sleep_seconds}s'}"
        if self.kind is ActionKind.VARIABLES:
            return "variables=" + ",".join(key for key, _ in self.variables)
        return self.kind.value

    @property
    def restarts_space(self) -> bool:
        """Whether the Hub rebuilds or restarts the Space for this action."""
        return self.kind in (
            ActionKind.RESTART,
            ActionKind.REBUILD,
            ActionKind.WAKE,
            ActionKind.HARDWARE,
            ActionKind.VARIABLES,
        )

    @classmethod
    def from_config(cls, value: Any) -> Action:
        """Return the action a config value names; raise ValueError otherwise."""
        if isinstance(value, str):
            if value in SIMPLE_ACTIONS:
                return cls(ActionKind(value))
            raise ValueError(f"unknown action {value!r}")

        if not isinstance(value, dict) or len(value) != 1:
            raise ValueError(f"{value!r} is not one action")
        ((key, argument),) = value.items()
        if key == "hardware":
            return hardware_action(argument)
        if key == "sleep_time":
            return sleep_time_action(argument)
        if key == "variables":
            return variables_action(argument)
        raise ValueError(f"unknown action key {key!r}")

    @classmethod
    def from_cli(cls, text: str) -> Action:
        """Return the action of `act`'s argument: `pause`, `hardware=t4-small`, ..."""
        if text in SIMPLE_ACTIONS:
            return cls(ActionKind(text))

        key, sep, argument = text.partition("=")
        if sep and key == "hardware":
            return hardware_action(argument)
        if sep and key == "sleep_time":
            return sleep_time_action(argument)
        if sep and key == "variable":
            name, sep, value = argument.partition("=")
            if sep:
                return variables_action({name: value})
        raise ValueError(
            f"unknown action {text!r}; use rebuild, pause, wake, restart, "
            "hardware=FLAVOR, sleep_time=DURATION or variable=KEY=VALUE"
        )


def hardware_action(flavor: Any) -> Action:
    if not isinstance(flavor, str) or not flavor:
        raise ValueError(f"hardware needs a flavor name, not {flavor!r}")
    return Action(ActionKind.HARDWARE, hardware=flavor)


def sleep_time_action(value: Any) -> Action:
    if value == "never" or value == -1:
        return Action(ActionKind.SLEEP_TIME, sleep_seconds=-1)
    if isinstance(value, int) and value > 0:
        return Action(ActionKind.SLEEP_TIME, sleep_seconds=value)
    if not isinstance(value, str):
        raise ValueError(f'sleep_time needs a duration or "never", not {value!r}')

    seconds = int(parse_duration(value).total_seconds())
    if seconds <= 0:
        raise ValueError(f"sleep_time must be longer than 0, not {value!r}")
    return Action(ActionKind.SLEEP_TIME, sleep_seconds=seconds)


def variables_action(value: Any) -> Action:
    if not isinstance(value, dict) or not value:
        raise ValueError(f'variables needs a table {{ KEY = "value" }}, not {value!r}')

    pairs = []
    for key, text in value.items():
        if not _VARIABLE_KEY.match(str(key)):
            raise ValueError(f"variable name {key!r} is not a valid identifier")
        if not isinstance(text, str):
            raise ValueError(f"variable {key} needs a string value, not {text!r}")
        pairs.append((str(key), text))
    return Action(ActionKind.VARIABLES, variables=tuple(sorted(pairs)))
