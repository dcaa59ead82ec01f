"""Benchmark: two commands in turn (A B A B ...), each run a fresh process, with the ratio A/B pair by
pair, so a comparison holds while the machine's speed drifts (it does: docs/benchmarks.md).

    .venv/bin/python bench/paired.py --pairs 3 --warmup 1 \\
        --a "bench/lifecycle_run.sh ." --b "bench/lifecycle_run.sh /path/to/old/checkout"

Prints each run's wall time and exit code, then the medians and the median of the pair ratios
as Markdown. A run that fails is reported and its pair left out of the ratio.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import time


def _timed(command: str) -> tuple[float, int]:
    start = time.perf_counter()
    code = subprocess.run(
        shlex.split(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode
    return time.perf_counter() - start, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True, help="command A (usually the new code)")
    parser.add_argument("--b", required=True, help="command B (usually the old code)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="pairs run first and not counted")
    args = parser.parse_args()

    for _ in range(args.warmup):
        _timed(args.a), _timed(args.b)
    a_times, b_times, ratios = [], [], []
    for pair in range(1, args.pairs + 1):
        (a, a_code), (b, b_code) = _timed(args.a), _timed(args.b)
        print(f"pair {pair}: A {a:.1f} s (exit {a_code}), B {b:.1f} s (exit {b_code})", flush=True)
        if a_code == 0 and b_code == 0:
            a_times.append(a), b_times.append(b), ratios.append(a / b)
    if not ratios:
        raise SystemExit("no pair where both commands succeeded")
    print(f"\n| A median | B median | A/B (median of {len(ratios)} pairs) | A/B range |\n|---|---|---|---|")
    print(
        f"| {statistics.median(a_times):.1f} s | {statistics.median(b_times):.1f} s | "
        f"{statistics.median(ratios):.3f} | {min(ratios):.3f}-{max(ratios):.3f} |"
    )


if __name__ == "__main__":
    main()
