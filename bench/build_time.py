"""Wall time of `course build` on the shipped article, including interpreter start.

Target: under 1 s. Baseline, measured in the same run: a bare `python -c pass`, so the
ratio shows what Dripcourse adds on top of starting Python at all.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 7
TARGET_SECONDS = 1.0


def wall_time(command: list[str]) -> float:
    """Median wall time of `command` over RUNS runs, after one warm-up."""
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as out:
        build = wall_time([sys.executable, "-m", "course.cli", "build", "--out", out])
    baseline = wall_time([sys.executable, "-c", "pass"])
    print(f"course build (15 lessons, median of {RUNS}): {build * 1000:.0f} ms")
    print(f"baseline: python -c pass:                 {baseline * 1000:.0f} ms")
    print(f"ratio build/baseline: {build / baseline:.1f}x")
    verdict = "OK" if build < TARGET_SECONDS else "OVER TARGET"
    print(f"target < {TARGET_SECONDS:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
