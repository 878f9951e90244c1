"""`python -m bench [name ...]` runs the benchmarks (all by default)."""

from __future__ import annotations

import importlib
import sys

BENCHES = ["import_bench", "compliance", "ledger", "run", "dispatch", "web"]


def main() -> None:
    names = sys.argv[1:] or BENCHES
    for name in names:
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
