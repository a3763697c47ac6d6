"""How fast the command line answers: `recommender --help` and a sub-command's help.

    python benchmarks/bench_cli.py            # prints a Markdown table; target: ≤ 1 s

Each command runs as a fresh process (Python start included), as a user runs it.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["validate", "--help"], ["models", "promote", "--help"])
RUNS = 15


def measure(args: list[str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "recommender.cli", *args], check=True,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    print(f"`recommender` start-up, {RUNS} runs each, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}:\n")
    print("| command | median s | max s |\n|---|---|---|")
    for args in COMMANDS:
        times = measure(args)
        print(f"| `recommender {' '.join(args)}` | {statistics.median(times):.2f} | {max(times):.2f} |")


if __name__ == "__main__":
    main()
