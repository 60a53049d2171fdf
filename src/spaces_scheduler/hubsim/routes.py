"""Every route of the simulated Hub, in the order they are tried."""

from __future__ import annotations

from spaces_scheduler.hubsim import api_account, api_repos, api_spaces, control
from spaces_scheduler.hubsim.wire import Route


def hub_routes() -> list[Route]:
    # Account routes come first: `/api/spaces/hardware` is not a Space.
    return api_account.routes() + api_spaces.routes() + api_repos.routes()


def control_routes() -> list[Route]:
    return control.routes()
