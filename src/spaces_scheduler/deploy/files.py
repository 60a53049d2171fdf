"""Writing generated files, comparing them with the disk, and a small YAML writer.

The YAML writer exists so that the output is byte-stable and readable without a
YAML library at run time: keys keep their order, strings are quoted only when a
YAML reader could take them for something else, and scripts are literal blocks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from spaces_scheduler.deploy.base import MARKER, GeneratedFile, Rendered

# Words a YAML 1.1 reader turns into booleans or null; quoted as values.
_SPECIAL = re.compile(
    r"^(?:y|n|yes|no|on|off|true|false|null|~|[-+]?[0-9][0-9_.:eE+-]*|\.inf|\.nan)$",
    re.IGNORECASE,
)
_PLAIN = re.compile(r"^[A-Za-z0-9_./$][A-Za-z0-9_ ./@$:=+,()'-]*$")


def scalar(value: object) -> str:
    """Return one YAML scalar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = _PLAIN.match(text) and not _SPECIAL.match(text)
    if plain and ": " not in text and " #" not in text and not text.endswith(":"):
        return text
    return json.dumps(text)


def _key(key: str) -> str:
    # `on` is GitHub's key and reads as a string to every YAML 1.2 reader.
    return key if key == "on" or scalar(key) == key else json.dumps(key)


def to_yaml(value: object, indent: int = 0) -> str:
    """Return `value` (dicts, lists, scalars) as block-style YAML lines."""
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return f"{pad}{{}}\n"
        return "".join(_item(f"{pad}{_key(k)}:", v, indent) for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return f"{pad}[]\n"
        return "".join(_list_item(v, indent) for v in value)
    return f"{pad}{scalar(value)}\n"


def _item(prefix: str, value: object, indent: int) -> str:
    if _blockable(value):
        return f"{prefix} {_block(str(value), indent + 2)}"
    if _nested(value):
        return f"{prefix}\n{to_yaml(value, indent + 2)}"
    if isinstance(value, Mapping | list):  # empty
        return f"{prefix} {'{}' if isinstance(value, Mapping) else '[]'}\n"
    return f"{prefix} {scalar(value)}\n"


def _list_item(value: object, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, Mapping) and value:
        text = to_yaml(value, indent + 2)
        return f"{pad}- {text[indent + 2 :]}"
    if _blockable(value):
        return f"{pad}- {_block(str(value), indent + 2)}"
    return f"{pad}- {scalar(value)}\n"


def _nested(value: object) -> bool:
    return bool(value) and isinstance(value, Mapping | list)


def _blockable(value: object) -> bool:
    """Whether a string reads back exactly from a literal block `|`."""
    if not isinstance(value, str) or "\n" not in value:
        return False
    # A leading blank would need an indentation indicator; odd characters and
    # blank-only endings are safer in quotes.
    lines = value.split("\n")
    return (
        value[0] not in " \n"
        and value.rstrip("\n") + "\n" in (value, value + "\n")
        and all(line.isprintable() and line == line.rstrip() for line in lines)
    )


def _block(text: str, indent: int) -> str:
    chomp = "" if text.endswith("\n") else "-"
    pad = " " * indent
    body = "".join(f"{pad}{line}\n" if line else "\n" for line in text.splitlines())
    return f"|{chomp}\n{body}"


# ---------------------------------------------------------------------------
# Disk


def write(rendered: Rendered) -> list[str]:
    """Write the files, remove stale generated ones; return a line per change."""
    lines = []
    for item in rendered.files:
        old = _read(item.path)
        if old == item.text:
            continue
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text, encoding="utf-8")
        if item.executable:
            item.path.chmod(0o755)
        lines.append(f"{'wrote' if old is None else 'updated'} {item.path}")
    for path in stale(rendered):
        path.unlink()
        lines.append(f"removed {path} (no longer generated)")
    return lines


def differences(rendered: Rendered) -> list[str]:
    """Return a line per file that differs from what would be generated."""
    lines = []
    for item in rendered.files:
        old = _read(item.path)
        if old is None:
            lines.append(f"{item.path}: missing")
        elif old != item.text:
            lines.append(f"{item.path}: differs from what would be generated")
    lines += [f"{path}: generated before, no longer" for path in stale(rendered)]
    return lines


def stale(rendered: Rendered) -> list[Path]:
    """Return files in the target's folder that we generated and no longer do."""
    if not rendered.folder.is_dir():
        return []
    wanted = {item.path.resolve() for item in rendered.files}
    found = []
    for path in sorted(rendered.folder.iterdir()):
        if path.is_file() and path.resolve() not in wanted and _is_ours(path):
            found.append(path)
    return found


def _is_ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            head = [handle.readline() for _ in range(3)]
    except (OSError, UnicodeDecodeError):
        return False
    return any(MARKER in line for line in head)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def generated(path: Path, text: str, *, executable: bool = False) -> GeneratedFile:
    return GeneratedFile(path=path, text=text, executable=executable)
