"""Run the benchmarks: `python -m bench [NAME...]` (all when none is named)."""

from __future__ import annotations

import importlib
import sys

BENCHES = ["bench_restart", "bench_dispatch", "bench_ha", "bench_refresh"]


def main(names: list[str]) -> None:
    for name in names or BENCHES:
        module = importlib.import_module(f"bench.{name}")
        module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
