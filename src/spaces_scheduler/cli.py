"""The command line: `spaces-scheduler COMMAND ...`.

Errors become exit codes in one place, `SchedulerGroup.invoke`: 2 for bad usage,
a bad config or credentials found wanting before acting, 1 for failed runs. The
heavy modules (huggingface_hub, SQLAlchemy, the web stack) are imported inside
the commands that need them, so a one-shot command starts fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from spaces_scheduler import __version__
from spaces_scheduler.durations import parse_duration
from spaces_scheduler.errors import (
    ConfigError,
    CredentialsError,
    SchedulerError,
    StoreError,
)

if TYPE_CHECKING:
    from spaces_scheduler.config import Config

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


class Duration(click.ParamType):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(f"{exc}.", param, ctx)


class SchedulerGroup(click.Group):
    """Maps our errors to exit codes and one readable line each."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            _debug_traceback(ctx)
            ctx.exit(2)
        except (CredentialsError, StoreError) as exc:
            click.echo(f"error: {exc}", err=True)
            _debug_traceback(ctx)
            ctx.exit(2)
        except SchedulerError as exc:
            click.echo(f"error: {exc}", err=True)
            _debug_traceback(ctx)
            ctx.exit(1)


def _debug_traceback(ctx: click.Context) -> None:
    if ctx.find_root().meta.get("debug"):
        import traceback

        traceback.print_exc()


def common_options(command: F) -> F:
    """Add --config, --state and --debug, which every command takes."""
    command = click.option(
        "--debug", is_flag=True, help="Show debug logs and tracebacks."
    )(command)
    command = click.option(
        "--state",
        "state_url",
        metavar="URL",
        help="State store: sqlite:///PATH or postgresql://...",
    )(command)
    command = click.option(
        "--config",
        "config_file",
        metavar="FILE",
        help="The config file (default: $SPACES_SCHEDULER_CONFIG or spaces.toml).",
    )(command)
    return command


def setup(ctx: click.Context, *, debug: bool, level: int = logging.WARNING) -> None:
    """Configure logging for a command; the only place handlers are set."""
    ctx.find_root().meta["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def load_config(config_file: str | None, *, required: bool = True) -> Config | None:
    """Load the config, or return None when it is optional and absent."""
    from spaces_scheduler.config import config_path
    from spaces_scheduler.config import load_config as load

    path = config_path(config_file)
    if not required and config_file is None and not path.exists():
        return None
    if not path.exists():
        raise ConfigError(
            [f"{path}: no such config file; create it or pass --config FILE."]
        )
    return load(path)


@click.group(
    cls=SchedulerGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="spaces-scheduler")
def main() -> None:
    """Refresh, rebuild, pause and resize Hugging Face Spaces on schedules."""


# -- acting now ------------------------------------------------------------------


def action_options(command: F) -> F:
    command = click.option(
        "--token-env",
        metavar="NAME",
        help="Read the Hub token from this environment variable.",
    )(command)
    command = click.option(
        "--wait",
        type=Duration(),
        help="Fail a run whose Space is not RUNNING after this (default 20m).",
    )(command)
    command = click.option(
        "--no-wait",
        is_flag=True,
        help="Do not verify: a run is ok once the Hub accepted it.",
    )(command)
    return command


@main.command()
@click.argument("spaces", nargs=-1, required=True, metavar="SPACE...")
@click.option("--factory", is_flag=True, help="Factory rebuild instead of restart.")
@action_options
@common_options
@click.pass_context
def restart(
    ctx: click.Context,
    spaces: tuple[str, ...],
    factory: bool,
    no_wait: bool,
    wait: timedelta | None,
    token_env: str | None,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Restart Spaces now and verify that each came back RUNNING."""
    from spaces_scheduler.action import Action, ActionKind

    setup(ctx, debug=debug)
    action = Action(ActionKind.REBUILD if factory else ActionKind.RESTART)
    _act_now(ctx, action, spaces, no_wait, wait, token_env, config_file)


@main.command()
@click.argument("action_text", metavar="ACTION")
@click.argument("spaces", nargs=-1, required=True, metavar="SPACE...")
@action_options
@common_options
@click.pass_context
def act(
    ctx: click.Context,
    action_text: str,
    spaces: tuple[str, ...],
    no_wait: bool,
    wait: timedelta | None,
    token_env: str | None,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Run ACTION on Spaces now: rebuild, pause, wake, hardware=FLAVOR,
    sleep_time=DURATION or variable=KEY=VALUE."""
    from spaces_scheduler.action import Action

    setup(ctx, debug=debug)
    try:
        action = Action.from_cli(action_text)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}.", param_hint="ACTION") from exc
    _act_now(ctx, action, spaces, no_wait, wait, token_env, config_file)


def _act_now(
    ctx: click.Context,
    action: Any,
    spaces: tuple[str, ...],
    no_wait: bool,
    wait: timedelta | None,
    token_env: str | None,
    config_file: str | None,
) -> None:
    from spaces_scheduler.acting import act_now

    config = load_config(config_file, required=False)
    failed = act_now(
        config,
        action,
        list(dict.fromkeys(spaces)),
        wait=None if no_wait else wait,
        no_wait=no_wait,
        token_env=token_env,
    )
    ctx.exit(1 if failed else 0)


# -- the simulated Hub --------------------------------------------------------------


@main.command("hub-sim")
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@click.option(
    "--world",
    type=click.Path(exists=True, dir_okay=False),
    help="A world file; without it a small built-in world.",
)
@click.option("--debug", is_flag=True, help="Show debug logs and tracebacks.")
@click.pass_context
def hub_sim(ctx: click.Context, port: int, world: str | None, debug: bool) -> None:
    """Serve a simulated Hub on 127.0.0.1 for trying everything offline."""
    from spaces_scheduler.hubsim import serve_forever

    setup(ctx, debug=debug)
    serve_forever(port=port, world_path=world)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def config_dir(config: Config | None) -> Path:
    return config.path.parent if config is not None else Path.cwd()
