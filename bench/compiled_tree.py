"""The ``--compiled`` option of the benches: the tree built by ``scripts/build-compiled``, checked fresh.

``BENCH_COMPILED_TREE=DIR`` picks another tree than ``build/compiled``, for an A/B of two compiled sets
(``scripts/build-compiled DIR`` with another setup.py list builds it).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = Path(os.environ.get("BENCH_COMPILED_TREE") or ROOT / "build" / "compiled").resolve()


def compiled_tree() -> Path:
    """``build/compiled``, or exit with a one-line reason when it is missing or older than the sources.

    The wheel carries a copy of each source next to its compiled module, so comparing the two copies of
    every source file tells exactly whether the build is stale (a stale build would measure old code).
    """
    if not (TREE / "connector").is_dir():
        raise SystemExit(f"--compiled: no {TREE}; run `make compiled` (scripts/build-compiled) first")
    for source in (ROOT / "connector").rglob("*.py"):
        built = TREE / source.relative_to(ROOT)
        if not built.is_file() or built.read_bytes() != source.read_bytes():
            raise SystemExit(f"--compiled: {TREE} is stale ({source.relative_to(ROOT)}); run `make compiled`")
    return TREE


def import_path(*, compiled: bool) -> list[str]:
    """Entries to put in front of ``sys.path``: the checkout, and the compiled tree before it if asked."""
    return [str(compiled_tree()), str(ROOT)] if compiled else [str(ROOT)]
