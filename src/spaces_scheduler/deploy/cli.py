"""`spaces-scheduler deploy TARGET`: write (or check) what runs the schedules there."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from spaces_scheduler import __version__
from spaces_scheduler.cli import common_options, load_config, setup
from spaces_scheduler.deploy.base import (
    DEFAULT_IMAGE,
    DEFAULT_PREFIX,
    Options,
    Target,
)

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_INSTALL = f"spaces-scheduler=={__version__}"


@click.group()
def deploy() -> None:
    """Write what runs the schedules on GitHub Actions, Kubernetes, systemd or as
    Hugging Face scheduled Jobs."""


def file_options(command: F) -> F:
    """Add --output, --check and --install, which every file target takes."""
    command = click.option(
        "--install",
        metavar="SPEC",
        default=DEFAULT_INSTALL,
        show_default=True,
        help="What pip installs on the platform (a version pin or a git URL).",
    )(command)
    command = click.option(
        "--check",
        is_flag=True,
        help="Write nothing; exit 1 when the files differ from what would be "
        "generated.",
    )(command)
    command = click.option(
        "--output",
        type=click.Path(path_type=Path),
        help="Where to write (default: the target's usual place).",
    )(command)
    return common_options(command)


def state_secret_option(command: F) -> F:
    return click.option(
        "--state-secret",
        is_flag=True,
        help="Take the state store URL (e.g. postgresql://...) from the "
        "SPACES_SCHEDULER_STATE secret instead of the default place.",
    )(command)


@deploy.command()
@file_options
@state_secret_option
@click.pass_context
def github(ctx: click.Context, /, state_secret: bool, **common: Any) -> None:
    """A GitHub Actions workflow that runs `run --once` on each schedule."""
    from spaces_scheduler.deploy.github import GitHubTarget

    extra = ["--state-secret"] if state_secret else []
    _deploy(ctx, GitHubTarget(), common, extra, state_secret=state_secret)


@deploy.command()
@click.option(
    "--mode",
    type=click.Choice(["cronjob", "daemon"]),
    default="cronjob",
    show_default=True,
    help="A CronJob per schedule, or a Deployment running the daemon.",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Daemon replicas; more than 1 needs PostgreSQL (--state-secret).",
)
@click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="Image.")
@file_options
@state_secret_option
@click.pass_context
def kubernetes(
    ctx: click.Context,
    /,
    mode: str,
    replicas: int,
    image: str,
    state_secret: bool,
    **common: Any,
) -> None:
    """Kubernetes manifests: CronJobs, or a Deployment of the daemon."""
    from spaces_scheduler.deploy.kubernetes import KubernetesTarget

    if mode == "cronjob" and replicas != 1:
        raise click.UsageError("--replicas goes with --mode daemon.")
    extra = [f"--mode {mode}"]
    extra += [f"--replicas {replicas}"] if replicas != 1 else []
    extra += [f"--image {shlex.quote(image)}"] if image != DEFAULT_IMAGE else []
    extra += ["--state-secret"] if state_secret else []
    _deploy(
        ctx,
        KubernetesTarget(),
        common,
        extra,
        mode=mode,
        replicas=replicas,
        image=image,
        state_secret=state_secret,
    )


@deploy.command()
@click.option(
    "--mode",
    type=click.Choice(["timers", "daemon"]),
    default="timers",
    show_default=True,
    help="A service and a timer per schedule, or one service for the daemon.",
)
@click.option(
    "--prefix",
    default=DEFAULT_PREFIX,
    show_default=True,
    help="The virtual environment install.sh makes and the units run from.",
)
@file_options
@click.pass_context
def systemd(ctx: click.Context, /, mode: str, prefix: str, **common: Any) -> None:
    """systemd units: timers that run `run --once`, or the daemon's service."""
    from spaces_scheduler.deploy.systemd import SystemdTarget

    extra = [f"--mode {mode}"]
    extra += [f"--prefix {shlex.quote(prefix)}"] if prefix != DEFAULT_PREFIX else []
    _deploy(ctx, SystemdTarget(), common, extra, mode=mode, prefix=prefix)


@deploy.command("hf-job")
@click.option("--apply", is_flag=True, help="Create or update the Jobs on the Hub.")
@click.option("--namespace", metavar="NAME", help="User or org (default: yours).")
@click.option("--flavor", default="cpu-basic", show_default=True, help="Hardware.")
@click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="Image.")
@click.option(
    "--prune",
    is_flag=True,
    help="With --apply: delete our Jobs of schedules that are gone.",
)
@click.option(
    "--install",
    metavar="SPEC",
    default=DEFAULT_INSTALL,
    show_default=True,
    help="What pip installs in the Job.",
)
@click.option("--token-env", metavar="NAME", help="Read the token from this variable.")
@state_secret_option
@common_options
@click.pass_context
def hf_job(ctx: click.Context, /, **given: Any) -> None:
    """Hugging Face scheduled Jobs, one per schedule (printed; created with
    --apply)."""
    from spaces_scheduler.deploy.hfjob import run_hf_job

    setup(ctx, debug=given.pop("debug"))
    _refuse_state(given.pop("state_url"))
    config = load_config(given.pop("config_file"))
    assert config is not None
    ctx.exit(run_hf_job(config, **given))


def _deploy(
    ctx: click.Context,
    target: Target,
    common: dict[str, Any],
    extra: list[str],
    **chosen: Any,
) -> None:
    from spaces_scheduler.deploy.files import differences, write

    setup(ctx, debug=common["debug"])
    _refuse_state(common["state_url"])
    config = load_config(common["config_file"])
    assert config is not None
    output = common["output"] or Path(target.default_output)
    options = Options(
        install=common["install"],
        output=output,
        command=_command(target, config.path, common, extra),
        **chosen,
    )

    rendered = target.render(config, options)
    for note in rendered.notes:
        click.echo(note, err=True)
    if not common["check"]:
        for line in write(rendered) or ["up to date: nothing to write"]:
            click.echo(line)
        return

    problems = differences(rendered)
    for line in problems:
        click.echo(line)
    if problems:
        click.echo(f"out of date; regenerate with: {options.command}", err=True)
        ctx.exit(1)
    click.echo(f"up to date: {len(rendered.files)} files")


def _command(
    target: Target, config_path: Path, common: dict[str, Any], extra: list[str]
) -> str:
    words = ["spaces-scheduler deploy", target.name]
    words.append(f"--config {shlex.quote(os.path.relpath(config_path))}")
    if common["output"] is not None:
        words.append(f"--output {shlex.quote(str(common['output']))}")
    if common["install"] != DEFAULT_INSTALL:
        words.append(f"--install {shlex.quote(common['install'])}")
    return " ".join(words + extra)


def _refuse_state(state_url: str | None) -> None:
    if state_url:
        raise click.UsageError(
            "deploy writes no state URL into files (it may hold a password); "
            "put it in the SPACES_SCHEDULER_STATE secret and pass --state-secret."
        )
