"""The OpenAPI 3.1 description of the JSON API, written by hand.

Hand-written rather than generated so that it says exactly what the handlers
do; the schemathesis test holds the two together.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spaces_scheduler.outcome import OutcomeKind


class RunRequest(BaseModel):
    """The body of `POST /api/runs`."""

    model_config = ConfigDict(extra="forbid")

    space: str = Field(min_length=3, max_length=200, pattern=r"^[^/\s]+/[^/\s]+$")
    schedule: str | None = Field(default=None, max_length=200)
    action: str | None = Field(default=None, max_length=200)
    request_id: str | None = Field(default=None, min_length=1, max_length=200)


SORTS = [
    key
    for name in (
        "space",
        "stage",
        "outcome",
        "last",
        "next",
        "failures",
        "duration",
        "late",
    )
    for key in (name, f"-{name}")
]
OUTCOMES = [kind.value for kind in OutcomeKind]

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_RUN: dict[str, Any] = {
    "type": "object",
    "required": ["id", "schedule", "space", "slot", "action", "outcome"],
    "properties": {
        "id": {"type": "integer"},
        "schedule": {"type": "string"},
        "space": {"type": "string"},
        "slot": {"type": "string", "format": "date-time"},
        "action": {"type": "string"},
        "trigger": {
            "type": "string",
            "enum": ["schedule", "manual", "webhook", "window"],
        },
        "owner": {"type": "string", "description": "The process that claimed it."},
        "outcome": {"type": "string", "enum": [*OUTCOMES, "running"]},
        "reason": {"type": "string"},
        "summary": {"type": "string"},
        "stages": {"type": "array", "items": {"type": "string"}},
        "requests": {"type": "integer"},
        "duration": {"type": "number"},
        "lateness": {"type": "number"},
        "claimed_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "log_tail": {"type": "array", "items": {"type": "string"}},
    },
}
_SPACE: dict[str, Any] = {
    "type": "object",
    "required": ["space", "outcome", "schedules", "consecutive_failures"],
    "properties": {
        "space": {"type": "string"},
        "owner": {"type": "string"},
        "stage": _NULLABLE_STRING,
        "stage_seen": _NULLABLE_STRING,
        "outcome": {"type": "string", "enum": [*OUTCOMES, "running", "never"]},
        "last_run": {"oneOf": [{"$ref": "#/components/schemas/Run"}, {"type": "null"}]},
        "next_run": _NULLABLE_STRING,
        "next_schedule": _NULLABLE_STRING,
        "schedules": {"type": "array", "items": {"type": "string"}},
        "consecutive_failures": {"type": "integer", "minimum": 0},
    },
}
_SCHEDULE: dict[str, Any] = {
    "type": "object",
    "required": ["name", "cron", "timezone", "action", "spaces"],
    "properties": {
        "name": {"type": "string"},
        "cron": {"type": "string"},
        "timezone": {"type": "string"},
        "action": {"type": "string"},
        "spaces": {"type": "array", "items": {"type": "string"}},
        "jitter": {"type": "number"},
        "misfire_grace": {"type": "number"},
        "next_slot": _NULLABLE_STRING,
        "seconds_until_next": {"type": ["number", "null"]},
    },
}
_WINDOW: dict[str, Any] = {
    "type": "object",
    "required": ["name", "spaces"],
    "properties": {
        "name": {"type": "string"},
        "spaces": {"type": "array", "items": {"type": "string"}},
        **{
            key: {"type": "string"}
            for key in ("timezone", "days", "hours", "inside", "outside")
        },
    },
}
_NEXT: dict[str, Any] = {
    "type": "object",
    "required": ["schedule", "local", "utc", "shifted"],
    "properties": {
        "schedule": {"type": "string"},
        "local": {"type": "string"},
        "utc": {"type": "string"},
        "shifted": {"type": "boolean"},
    },
}
_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}
_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["run_id", "outcome", "request_id"],
    "properties": {
        "run_id": {"type": ["integer", "null"]},
        "outcome": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_FAILURES = {
    "400": _answer("A query value or the body is not valid.", _ref("Error")),
    "401": _answer("An access token is required.", _ref("Error")),
}


def _get(
    summary: str, ok: dict[str, Any], *parameters: dict[str, Any]
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": list(parameters),
            "responses": {"200": _answer("OK", ok), **_FAILURES},
        }
    }


def _list_of(key: str, item: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": _ref(item)}, **extra},
    }


@cache
def openapi() -> dict[str, Any]:
    """Return the OpenAPI document (the same object each call: do not mutate)."""
    string = {"type": "string"}
    paths = {
        "/api/spaces": _get(
            "Every Space with its stage, last run and next run.",
            _list_of("spaces", "Space"),
            _query("schedule", string, "Only Spaces of this schedule."),
            _query(
                "outcome",
                {"type": "string", "enum": [*OUTCOMES, "running", "never"]},
                "Only Spaces whose last run ended so.",
            ),
            _query("owner", string, "Only Spaces of this user or organisation."),
            _query(
                "sort", {"type": "string", "enum": SORTS}, "Sort key; - for descending."
            ),
        ),
        "/api/spaces/{owner}/{name}": {
            "get": {
                "summary": "One Space: its row, windows and last 20 runs.",
                "parameters": [
                    {"name": "owner", "in": "path", "required": True, "schema": string},
                    {"name": "name", "in": "path", "required": True, "schema": string},
                ],
                "responses": {
                    "200": _answer(
                        "OK",
                        {
                            "allOf": [
                                _ref("Space"),
                                {
                                    "type": "object",
                                    "required": ["windows", "runs"],
                                    "properties": {
                                        "windows": {
                                            "type": "array",
                                            "items": _ref("Window"),
                                        },
                                        "runs": {"type": "array", "items": _ref("Run")},
                                    },
                                },
                            ]
                        },
                    ),
                    "404": _answer(
                        "No such Space in the config or the store.", _ref("Error")
                    ),
                    **_FAILURES,
                },
            }
        },
        "/api/schedules": _get(
            "Every schedule with its next slot, and every window.",
            _list_of(
                "schedules",
                "Schedule",
                windows={"type": "array", "items": _ref("Window")},
            ),
        ),
        "/api/runs": {
            **_get(
                "Runs, newest first, filtered; page with before_id = next_before_id.",
                _list_of("runs", "Run", next_before_id={"type": ["integer", "null"]}),
                _query("space", string, "Only runs of this Space."),
                _query("schedule", string, "Only runs of this schedule."),
                _query(
                    "outcome",
                    {"type": "string", "enum": OUTCOMES},
                    "Only runs ending so.",
                ),
                _query(
                    "before_id",
                    {"type": "integer", "minimum": 1, "maximum": 2**62},
                    "Only runs with a smaller id.",
                ),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 500},
                    "At most this many runs (default 50).",
                ),
            ),
            "post": {
                "summary": "Run an action on a Space now; idempotent per request id.",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 200},
                        "description": "Same key, same answer, one run.",
                    },
                    {
                        "name": "X-CSRF-Token",
                        "in": "header",
                        "required": False,
                        "schema": string,
                        "description": "Needed without a bearer token; from /api/csrf.",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": RunRequest.model_json_schema()}
                    },
                },
                "responses": {
                    "200": _answer(
                        "The run, with its outcome or `running`.", _ref("RunResult")
                    ),
                    "403": _answer(
                        "No CSRF token, or the server is read-only.", _ref("Error")
                    ),
                    "413": _answer("The body is too large.", _ref("Error")),
                    "415": _answer("The body is not JSON.", _ref("Error")),
                    **_FAILURES,
                },
            },
        },
        "/api/next": _get(
            "The next slots of every schedule.",
            _list_of("next", "NextSlot"),
            _query(
                "count",
                {"type": "integer", "minimum": 1, "maximum": 50},
                "Slots per schedule (default 5).",
            ),
        ),
        "/api/csrf": _get(
            "A CSRF token for POST /api/runs without a bearer token.",
            {"type": "object", "required": ["csrf"], "properties": {"csrf": string}},
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "spaces-scheduler",
            "version": "1",
            "description": "Spaces, schedules and runs, from the state store.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Run": _RUN,
                "Space": _SPACE,
                "Schedule": _SCHEDULE,
                "Window": _WINDOW,
                "NextSlot": _NEXT,
                "Error": _ERROR,
                "RunResult": _RESULT,
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
