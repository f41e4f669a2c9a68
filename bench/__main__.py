"""`python -m bench [NAME ...] [-- args]`: run benchmarks (all by default), each beside its peer.
`python -m bench targets [-- --long]`: every target of the project measured, one table
(bench/targets.py).

Every benchmark is a module bench/bench_<name>.py with `main(argv) -> int`."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    names, rest = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :])
        if "--" in argv
        else (
            argv,
            [],
        )
    )
    if any(n in ("-h", "--help") for n in names):
        print(__doc__)
        print("available:", ", ".join(available()))
        return 0
    if names == ["targets"]:
        from bench import targets

        return targets.main(rest)
    names = names or available()
    code = 0
    for name in names:
        if name not in available():
            print(f"unknown benchmark {name!r}; available: {', '.join(available())}")
            return 2
        print(f"### benchmark {name}", flush=True)
        mod = importlib.import_module(f"bench.bench_{name}")
        code |= int(mod.main(rest))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
