"""Top-N functions of a py-spy profile in collapsed format (``py-spy record --format raw``).

    .venv/bin/python bench/py_spy_top.py OUT [--top 25]

Prints two Markdown tables: by own time (the sample's innermost frame) and by inclusive time (any frame
of the stack, counted once per sample), each as a share of all samples. Frames are ``function (file:line)``
as py-spy writes them; the line number is dropped so one function is one row.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """``decode (connector/sink/mapping/decode.py:29)`` → ``decode (…/mapping/decode.py)``."""
    name = LINE.sub(")", frame.strip())
    head, _, where = name.partition(" (")
    parts = where.rstrip(")").split("/")
    return f"{head} ({'/'.join(parts[-2:])})" if where else head


def tables(path: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    out = [f"{total:,} samples", ""]
    for title, counter in (("own", own), ("inclusive", inclusive)):
        out += [f"| function ({title}) | share |", "| --- | ---: |"]
        # Frames on (nearly) every stack (runpy, the event loop's run) say nothing: left out.
        rows = [(name, n) for name, n in counter.most_common() if n < 0.85 * total][:top]
        out += [f"| `{name}` | {n / total:.1%} |" for name, n in rows]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(tables(args.profile, args.top))
