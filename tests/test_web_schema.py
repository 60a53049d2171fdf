"""The JSON API against its own OpenAPI description, with schemathesis.

Generated requests (a bounded number per operation) go to the app in-process;
none may get a server error, and every answer must match the description.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from spaces_scheduler.store import open_store
from spaces_scheduler.web import build_app
from test_web import ACCESS, FakeRuns, fill_history, make_config


def _app() -> Any:
    # One store for the module: schemathesis collects its tests at import.
    folder = Path(tempfile.mkdtemp(prefix="web-schema-"))
    store = open_store(f"sqlite:///{folder}/state.db", config_path=None)
    fill_history(store, datetime.now(UTC).replace(microsecond=0), hours=20)
    config = make_config(folder)
    return build_app(
        config=config, store=store, run_now=FakeRuns(), access_token=ACCESS
    )


BEARER = {"authorization": f"Bearer {ACCESS}"}
schema = schemathesis.openapi.from_asgi("/api/openapi.json", _app(), headers=BEARER)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_description_and_never_fails(case: Any) -> None:
    response = case.call(headers=BEARER)
    case.validate_response(
        response,
        checks=(
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ),
    )
