"""Wall time of `course build`, including interpreter start: the shipped article (with its
edits), and the largest article of the test corpus.

Target: under 1 s. Baseline, measured in the same run: a bare `python -c pass`, so the
ratio shows what Dripcourse adds on top of starting Python at all. Also shown: reading an
article at the size limit (1 MB), in-process.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "articles"
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


def corpus_config(folder: Path, article: Path) -> Path:
    """A schedule.yaml that builds `article` with the shipped templates."""
    config = folder / "schedule.yaml"
    config.write_text(
        f"course:\n  article: {article}\n  templates: {ROOT / 'templates'}\n", encoding="utf-8"
    )
    return config


def read_at_limit() -> tuple[float, int]:
    """Median seconds to read an article of about 1 MB (the size limit), and its size."""
    from course.article import parse_article
    from course.article.encoding import MAX_BYTES

    shipped = (ROOT / "examples" / "why-he-pushes-you-away.txt").read_text(encoding="utf-8")
    text = "\n\n".join([shipped] * (MAX_BYTES // len(shipped.encode())))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        parse_article(text, source="limit.txt")
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(text.encode())


def main() -> None:
    largest = max(CORPUS.iterdir(), key=lambda path: path.stat().st_size)
    course = [sys.executable, "-m", "course.cli"]
    with tempfile.TemporaryDirectory() as out:
        build = wall_time([*course, "build", "--out", out])
        config = corpus_config(Path(out), largest)
        corpus = wall_time([*course, "--config", str(config), "build", "--out", f"{out}/c"])
    baseline = wall_time([sys.executable, "-c", "pass"])
    seconds, size = read_at_limit()
    print(f"course build, shipped article (15 lessons, median of {RUNS}): {build * 1000:.0f} ms")
    print(f"course build, {largest.name} (largest corpus article): {corpus * 1000:.0f} ms")
    print(f"baseline: python -c pass: {baseline * 1000:.0f} ms")
    print(f"ratio build/baseline: shipped {build / baseline:.1f}x, corpus {corpus / baseline:.1f}x")
    print(f"reading a {size / 1e6:.1f} MB article (the size limit), in-process: {seconds:.2f} s")
    worst = max(build, corpus)
    verdict = "OK" if worst < TARGET_SECONDS else "OVER TARGET"
    print(f"target < {TARGET_SECONDS:.0f} s: {verdict}")


if __name__ == "__main__":
    main()
