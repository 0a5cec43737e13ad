"""Run ``python -m connector ...`` under tracemalloc and write its biggest allocation sites periodically.

    python bench/heap_probe.py OUT.txt sink        # what bench/sink_throughput.py --heap-profile OUT.txt runs

Every 10 s (and at exit) OUT.txt is rewritten with the process's RSS, the bytes tracemalloc traces and the
top allocation sites (file:line, 25 frames deep grouped by the innermost frame). tracemalloc slows the
process several times over: use it to find where memory goes, never for throughput figures.
"""

from __future__ import annotations

import atexit
import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(out: Path, peak: list[float]) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    )
    traced, traced_peak = tracemalloc.get_traced_memory()
    rss = rss_mb()
    peak[0] = max(peak[0], rss)
    lines = [
        f"RSS {rss:.0f} MB (peak seen {peak[0]:.0f}); traced {traced / 2**20:.0f} MB (peak {traced_peak / 2**20:.0f})"
    ]
    for stat in snapshot.statistics("lineno")[:30]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size / 2**20:8.1f} MB {stat.count:9,} blocks  {frame.filename}:{frame.lineno}")
    lines.append("-- by file")
    lines.extend(
        f"{stat.size / 2**20:8.1f} MB {stat.count:9,} blocks  {stat.traceback[0].filename}"
        for stat in snapshot.statistics("filename")[:15]
    )
    out.write_text("\n".join(lines) + "\n")
    with out.with_suffix(".log").open("a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} " + lines[0] + "\n" + "\n".join(lines[1:8]) + "\n")


def main() -> None:
    out = Path(sys.argv[1])
    sys.argv = ["connector", *sys.argv[2:]]
    tracemalloc.start(1)
    peak = [0.0]

    def loop() -> None:
        while True:
            time.sleep(10)
            report(out, peak)

    threading.Thread(target=loop, daemon=True).start()
    atexit.register(report, out, peak)
    runpy.run_module("connector", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
