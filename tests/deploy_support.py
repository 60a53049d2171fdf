"""Helpers shared by the deploy tests: run `deploy` in a folder, read goldens."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from spaces_scheduler.cli import main

CONFIGS = Path(__file__).parent / "configs"
GOLDEN = Path(__file__).parent / "golden" / "deploy"
UPDATE = os.environ.get("UPDATE_GOLDEN", "") not in ("", "0")


def project(tmp_path: Path, config: str, *, fast: bool = False) -> Path:
    """Return a fresh project folder holding `configs/<config>` as spaces.toml.

    `fast` makes runs poll the simulated Hub every 50 ms instead of every 2 s.
    """
    folder = tmp_path / "project"
    folder.mkdir(parents=True, exist_ok=True)
    text = (CONFIGS / config).read_text()
    if fast:
        text = fast_polling(text)
    (folder / "spaces.toml").write_text(text)
    return folder


def fast_polling(text: str) -> str:
    """Return config text whose runs read the runtime every 50 ms."""
    if "[hub]\n" in text:
        return text.replace("[hub]\n", '[hub]\npoll = "0.05s"\n', 1)
    return '[hub]\npoll = "0.05s"\n\n' + text


def deploy(folder: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run `spaces-scheduler deploy ARGS` with `folder` as the current folder."""
    old = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(main, ["deploy", *args], env=env)
    finally:
        os.chdir(old)


def generated_files(folder: Path) -> dict[str, str]:
    """Return every file under `folder` but the config and state, by relative path."""
    found = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if (
            path.is_file()
            and relative != "spaces.toml"
            and ".spaces-scheduler" not in relative
        ):
            found[relative] = path.read_text(encoding="utf-8")
    return found


def compare_golden(name: str, files: dict[str, str]) -> None:
    """Compare `files` with `golden/deploy/<name>/`; rewrite it with UPDATE_GOLDEN=1."""
    folder = GOLDEN / name
    if UPDATE:
        shutil.rmtree(folder, ignore_errors=True)
        for relative, text in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return

    expected = {
        path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    assert sorted(files) == sorted(expected), f"{name}: other files than the golden"
    for relative, text in files.items():
        assert text == expected[relative], (
            f"{name}/{relative} differs from the golden; rerun with UPDATE_GOLDEN=1 "
            "if the change is meant"
        )
