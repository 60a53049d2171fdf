"""The command line: `spaces-scheduler COMMAND ...`.

Errors become exit codes in one place, `SchedulerGroup.invoke`: 2 for bad usage,
a bad config or credentials found wanting before acting, 1 for failed runs. The
heavy modules (huggingface_hub, SQLAlchemy, the web stack) are imported inside
the commands that need them, so a one-shot command starts fast.
"""

from __future__ import annotations

import logging
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


class Duration(click.ParamType):  # type: ignore[type-arg]
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


# Commands that live beside their subsystem, imported only when invoked so
# that `restart` and `run --once` do not pay for the web stack or deploy code.
LAZY_COMMANDS = {
    "deploy": "spaces_scheduler.deploy.cli:deploy",
    "serve": "spaces_scheduler.web.cli:serve",
    "webhook": "spaces_scheduler.webhooks.cli:webhook",
    "costs": "spaces_scheduler.costs:costs_command",
}


class SchedulerGroup(click.Group):
    """Maps our errors to exit codes and one readable line each."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        import importlib

        module_name, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            return None  # that part is not built yet
        command = getattr(module, attribute)
        assert isinstance(command, click.Command)
        return command

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
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug of ours: one line, traceback on --debug
            click.echo(
                f"error: unexpected {type(exc).__name__}: {exc} (run again with "
                "--debug for the traceback, and please report it)",
                err=True,
            )
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
        force=True,
    )
    if not debug:
        # A line per HTTP request drowns the line per run.
        for noisy in ("httpx2", "httpcore2", "huggingface_hub"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


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
        "--if-busy",
        type=click.Choice(["act", "wait", "skip"]),
        default="act",
        show_default=True,
        help="What to do with a Space the Hub shows building or starting.",
    )(command)
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
    if_busy: str,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Restart Spaces now and verify that each came back RUNNING."""
    from spaces_scheduler.action import Action, ActionKind

    setup(ctx, debug=debug)
    action = Action(ActionKind.REBUILD if factory else ActionKind.RESTART)
    _act_now(ctx, action, spaces, no_wait, wait, token_env, config_file, if_busy)


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
    if_busy: str,
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
    _act_now(ctx, action, spaces, no_wait, wait, token_env, config_file, if_busy)


def _act_now(
    ctx: click.Context,
    action: Any,
    spaces: tuple[str, ...],
    no_wait: bool,
    wait: timedelta | None,
    token_env: str | None,
    config_file: str | None,
    if_busy: str,
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
        if_busy=if_busy,
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


# -- schedules --------------------------------------------------------------------


@main.command()
@click.option("--once", is_flag=True, help="Fire what is due and exit.")
@click.option("--at", "at_cron", metavar="CRON", help="With --once: this cron fired.")
@click.option("--schedule", "schedule_name", metavar="NAME", help="Only this one.")
@click.option("--space", metavar="ID", help="Only this Space.")
@click.option(
    "--catch-up",
    is_flag=True,
    help="With --once: also the other schedules' slots missed since their last run.",
)
@click.option("--token-env", metavar="NAME", help="Read the token from this variable.")
@common_options
@click.pass_context
def run(
    ctx: click.Context,
    once: bool,
    at_cron: str | None,
    schedule_name: str | None,
    space: str | None,
    catch_up: bool,
    token_env: str | None,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Run the schedules: the daemon, or with --once what is due now."""
    from spaces_scheduler import service

    setup(ctx, debug=debug, level=logging.INFO)
    if not once and (at_cron or schedule_name or space or catch_up):
        raise click.UsageError(
            "--at, --schedule, --space and --catch-up go with --once."
        )

    config = load_config(config_file)
    assert config is not None
    if once:
        selection = service.Selection(
            at=at_cron, schedule=schedule_name, space=space, catch_up=catch_up
        )
        failed = service.run_once(config, state_url, token_env, selection)
        ctx.exit(1 if failed else 0)
    service.run_daemon(config, state_url, token_env, config_file=config_file)


@main.command("next")
@click.option("-n", "count", default=5, show_default=True, help="Slots per schedule.")
@click.option("--after", metavar="INSTANT", help="ISO-8601; UTC without an offset.")
@click.option("--json", "as_json", is_flag=True, help="JSON rows.")
@common_options
@click.pass_context
def next_command(
    ctx: click.Context,
    count: int,
    after: str | None,
    as_json: bool,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Show the next slots of every schedule."""
    from spaces_scheduler.dispatch import utc_now
    from spaces_scheduler.reports import next_lines, next_rows, parse_instant

    setup(ctx, debug=debug)
    if count < 1:
        raise click.BadParameter("must be 1 or more.", param_hint="-n")
    try:
        start = parse_instant(after) if after else utc_now()
    except ValueError as exc:
        raise click.BadParameter(f"{exc}.", param_hint="--after") from exc

    config = load_config(config_file)
    assert config is not None
    rows = next_rows(config, after=start, count=count)
    _emit(rows, next_lines(rows), as_json=as_json)


@main.command()
@click.option("--missed", is_flag=True, help="Report slots that passed with no run.")
@click.option("--token-env", metavar="NAME", help="Read the token from this variable.")
@click.option("--offline", is_flag=True, help="Check the config alone, not the Hub.")
@common_options
@click.pass_context
def check(
    ctx: click.Context,
    missed: bool,
    token_env: str | None,
    offline: bool,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Validate the config, the token and every Space; warn on risky schedules."""
    from spaces_scheduler import service

    setup(ctx, debug=debug)
    config = load_config(config_file)
    assert config is not None
    problems = service.check(
        config, state_url, token_env, missed=missed, offline=offline
    )
    ctx.exit(1 if problems else 0)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON rows.")
@click.option("--live", is_flag=True, help="Ask the Hub for each Space's stage.")
@click.option(
    "--daemons", "only_daemons", is_flag=True, help="Show the daemons instead."
)
@click.option("--token-env", metavar="NAME", help="Read the token from this variable.")
@common_options
@click.pass_context
def status(
    ctx: click.Context,
    as_json: bool,
    live: bool,
    only_daemons: bool,
    token_env: str | None,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Show each Space: last stage, last run and outcome (and which daemon ran
    it), next run; then the daemons sharing the store and whether each is alive."""
    from spaces_scheduler import service
    from spaces_scheduler.dispatch import utc_now
    from spaces_scheduler.reports import daemon_lines, status_lines

    setup(ctx, debug=debug)
    config = load_config(config_file)
    assert config is not None
    daemons = service.daemons(config, state_url)
    if only_daemons:
        _emit(daemons, daemon_lines(daemons, now=utc_now()), as_json=as_json)
        return
    rows = service.status(config, state_url, token_env, live=live)
    lines = status_lines(rows)
    if daemons:
        lines += ["", *daemon_lines(daemons, now=utc_now())]
    _emit(rows, lines, as_json=as_json)


@main.command()
@click.argument("space", required=False)
@click.option("--schedule", "schedule_name", metavar="NAME", help="Only this one.")
@click.option("-n", "limit", default=50, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="JSON rows.")
@common_options
@click.pass_context
def history(
    ctx: click.Context,
    space: str | None,
    schedule_name: str | None,
    limit: int,
    as_json: bool,
    config_file: str | None,
    state_url: str | None,
    debug: bool,
) -> None:
    """Show past runs, newest first, with outcomes, reasons and lateness."""
    from spaces_scheduler.reports import history_lines, run_row
    from spaces_scheduler.store import open_store

    setup(ctx, debug=debug)
    config = load_config(config_file, required=False)
    store = open_store(
        state_url, config_path=config.path if config else None, must_exist=True
    )
    try:
        records = store.runs(space=space, schedule=schedule_name, limit=limit)
    finally:
        store.close()
    _emit([run_row(r) for r in records], history_lines(records), as_json=as_json)


def _emit(rows: list[dict[str, Any]], lines: list[str], *, as_json: bool) -> None:
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    for line in lines:
        click.echo(line)


@main.command()
@click.option(
    "--duration",
    type=Duration(),
    help="Stop after this long (default: run until Ctrl-C).",
)
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the demo's config and state (default: a temp folder).",
)
@click.option("--debug", is_flag=True, help="Show debug logs and tracebacks.")
@click.pass_context
def demo(
    ctx: click.Context, duration: timedelta | None, folder: Path | None, debug: bool
) -> None:
    """Run the simulated Hub and the daemon on a sample config."""
    from spaces_scheduler.demo import run_demo

    setup(ctx, debug=debug)
    seconds = duration.total_seconds() if duration is not None else None
    run_demo(duration=seconds, folder=folder)
