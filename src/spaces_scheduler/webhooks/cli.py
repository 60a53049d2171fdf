"""`spaces-scheduler webhook register URL`: one Hub webhook for every watched repo.

The webhook is found again by its URL, so running the command after an edit of
the config updates it rather than adding a second one. The full `watched` list
is sent every time (the client would otherwise send an empty one), with the
`repo` domain only (discussions do not change data) and the secret of
`[webhooks] secret_env`. A webhook the Hub disabled (after failed deliveries)
is enabled again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from spaces_scheduler.cli import common_options, load_config, setup
from spaces_scheduler.errors import ConfigError
from spaces_scheduler.webhooks import watched_repositories, webhook_secret

if TYPE_CHECKING:
    from spaces_scheduler.hub import HubCalls

log = logging.getLogger(__name__)

ROUTE = "/webhooks/hub"
DEADLINE = 120.0


@click.group()
def webhook() -> None:
    """Manage the Hub webhook that triggers when_changed schedules."""


@webhook.command()
@click.argument("url")
@click.option(
    "--token-env",
    metavar="NAME",
    help="Read the Hub token from this environment variable.",
)
@common_options
@click.pass_context
def register(
    ctx: click.Context,
    url: str,
    token_env: str | None,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Create or update the Hub webhook to URL for every watched repository."""
    from spaces_scheduler.acting import open_hub

    setup(ctx, debug=debug)
    config = load_config(config_file)
    assert config is not None
    _check_url(url)
    watched = watched_repositories(config)
    if not watched:
        raise ConfigError(
            [f"{config.path}: no schedule has when_changed; nothing to watch."]
        )
    secret = webhook_secret(config)
    if secret is None:
        raise ConfigError([_no_secret(config.webhooks.secret_env, config.path)])

    client = open_hub(config, token_env=token_env)
    calls = client.calls(deadline=time.monotonic() + DEADLINE)
    verb, hook = register_webhook(calls, url, watched, secret)
    names = ", ".join(f"{item['type']}s/{item['name']}" for item in watched)
    click.echo(f"{verb} webhook {hook['id']} to {url}, watching {names}")


def register_webhook(
    calls: HubCalls, url: str, watched: list[dict[str, str]], secret: str
) -> tuple[str, dict[str, Any]]:
    """Create the webhook to `url`, or update the one there is; say which."""
    existing = [hook for hook in calls.list_webhooks() if hook["url"] == url]
    if not existing:
        return "created", calls.create_webhook(url=url, watched=watched, secret=secret)

    hook = calls.update_webhook(
        existing[0]["id"], url=url, watched=watched, secret=secret
    )
    if hook["disabled"]:
        hook = calls.enable_webhook(hook["id"])
        return "updated and enabled", hook
    return "updated", hook


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not an http(s) URL; give the address the Hub should "
            f"POST to, such as https://example.org{ROUTE}.",
            param_hint="URL",
        )
    if not parts.path.endswith(ROUTE):
        log.warning("%s does not end with %s, where the daemon listens", url, ROUTE)


def _no_secret(variable: str | None, path: object) -> str:
    if variable is None:
        return (
            f"{path}: [webhooks] secret_env is not set; name a variable holding a "
            "secret, such as SPACES_SCHEDULER_WEBHOOK_SECRET."
        )
    return (
        f"{path}: the variable {variable} (named by [webhooks] secret_env) is "
        "empty or unset; put the webhook secret in it."
    )
