"""What the garbage collector does in a sink process: put this directory first on the connector's path.

    .venv/bin/python bench/sink_throughput.py --records 1000000 --set PYTHONPATH=$PWD/bench/gc_probe:$PWD \
        [--set GC_PROBE_THRESHOLD=700,100,10|off] [--set GC_PROBE_SAVEALL=1] [--set GC_PROBE_OUT=/tmp/gc.txt]

Python imports ``sitecustomize`` at start-up; this one acts only in a process whose arguments name ``sink``
(the connector, not the bench, the broker or the fake). 3 s after start-up (after ``cmd_service`` set the
role's thresholds and froze the start-up objects) it applies ``GC_PROBE_THRESHOLD`` (``off``: no automatic
collection) and, with ``GC_PROBE_SAVEALL=1``, ``gc.DEBUG_SAVEALL``, so every unreachable object found from
then on is kept in ``gc.garbage`` rather than freed. At exit it appends to ``GC_PROBE_OUT`` (default
/tmp/gc_probe.txt): the thresholds, collections / objects found / CPU seconds per generation since then, and
the saved garbage by type. A diagnostic, never for figures that matter: the callbacks cost a little CPU.
"""

from __future__ import annotations

import sys

if "sink" in sys.argv:
    import atexit
    import collections
    import gc
    import os
    import tempfile
    import threading
    import time

    _OUT = os.environ.get("GC_PROBE_OUT") or os.path.join(tempfile.gettempdir(), "gc_probe.txt")
    _THRESHOLD = os.environ.get("GC_PROBE_THRESHOLD", "")
    _SAVEALL = os.environ.get("GC_PROBE_SAVEALL") == "1"
    _stats = {generation: [0, 0, 0.0] for generation in range(3)}  # collections, found, CPU seconds
    _state = {"started": 0.0, "on": False}

    def _on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _state["started"] = time.process_time()
        elif _state["on"]:
            stats = _stats[info["generation"]]
            stats[0] += 1
            stats[1] += info["collected"]
            stats[2] += time.process_time() - _state["started"]

    def _after_start_up() -> None:
        time.sleep(3)
        if _THRESHOLD == "off":
            gc.disable()
        elif _THRESHOLD:
            gc.set_threshold(*(int(part) for part in _THRESHOLD.split(",")))
        if _SAVEALL:
            gc.set_debug(gc.DEBUG_SAVEALL)
        _state["on"] = True

    def _report() -> None:
        gc.set_debug(0)
        found = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
        lines = [
            f"{time.strftime('%H:%M:%S')} pid {os.getpid()} thresholds {gc.get_threshold()} enabled {gc.isenabled()}"
            f" saveall {_SAVEALL}; since 3 s after start-up: "
            + "; ".join(
                f"gen{g} {n} collections, {found_n} found, {cpu:.3f} CPU-s" for g, (n, found_n, cpu) in _stats.items()
            )
        ]
        if _SAVEALL:
            lines.append(f"  garbage kept: {len(gc.garbage)} objects")
            lines.extend(f"  {count:9,d}  {name}" for name, count in found.most_common(25))
        with open(_OUT, "a") as out:
            out.write("\n".join(lines) + "\n")

    gc.callbacks.append(_on_collection)
    threading.Thread(target=_after_start_up, daemon=True).start()
    atexit.register(_report)
