"""`python -m spaces_scheduler.hubsim --port 0 --world FILE`: serve a world."""

from __future__ import annotations

import argparse
import sys

from spaces_scheduler.hubsim.server import serve_forever
from spaces_scheduler.hubsim.world import WorldError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spaces_scheduler.hubsim",
        description="Serve a simulated Hugging Face Hub on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--world", default=None, help="a world TOML file")
    args = parser.parse_args(argv)

    try:
        serve_forever(port=args.port, world_path=args.world)
    except WorldError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
