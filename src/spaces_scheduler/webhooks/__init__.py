"""Hub webhooks: the `/webhooks/hub` receiver and `webhook register`.

`receiver` checks, parses and debounces deliveries and triggers the runs of the
`when_changed` schedules that watch the repository; `cli` creates or updates the
one Hub webhook that watches every such repository.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spaces_scheduler.config import Config


def webhook_secret(config: Config) -> str | None:
    """Return the secret named by `[webhooks] secret_env`; None when unset."""
    name = config.webhooks.secret_env
    value = os.environ.get(name, "").strip() if name else ""
    return value or None


def watched_repositories(config: Config) -> list[dict[str, str]]:
    """Return the `watched` list of the Hub webhook: every when_changed repository."""
    kinds = {"datasets": "dataset", "models": "model", "spaces": "space"}
    found: dict[tuple[str, str], None] = {}
    for schedule in config.schedules:
        for entry in schedule.when_changed:
            kind, _, name = entry.partition("@")[0].partition("/")
            found[(kinds[kind], name)] = None
    return [{"type": kind, "name": name} for kind, name in found]
