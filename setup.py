"""Optional compiled build of the sink's pure hot path (pyproject.toml holds everything else).

    CIO_CONNECTOR_COMPILE=1 pip wheel --no-build-isolation --no-deps -w dist .   # needs mypy installed

compiles the modules below with mypyc (shipped with mypy) into C extensions; the wheel still carries the
.py sources, and nothing else changes. Without the variable this file adds nothing and the package is pure
Python, which is what an editable development install must be (a compiled module would shadow edits).
Measured by bench/mapping.py and bench/sink_path.py; tested by tests/test_compiled.py.
"""

import os

from setuptools import setup

# The sink's per-record CPU, all of it pure, synchronous and fully typed (tests/test_layout.py checks it):
# the mapping layer as a whole (decode → map → validate → serialize; mypyc compiles every module under the
# directory), and the engine's bookkeeping around it, file by file (record path, tickets, routing, batcher,
# offsets, wire-format decoding). The coroutines around them (runner, delivery) stay interpreted. A class
# that Python code subclasses says so with mypyc_attr(allow_interpreted_subclasses=True) (routing.Router).
COMPILED_PACKAGES = [
    "connector/sink/mapping",
    "connector/sink/record_path.py",
    "connector/sink/tickets.py",
    "connector/sink/batcher.py",
    "connector/sink/offsets.py",
    "connector/sink/routing.py",
    "connector/sink/framed.py",
]


def ext_modules() -> list[object]:
    if os.environ.get("CIO_CONNECTOR_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    return list(mypycify(COMPILED_PACKAGES, opt_level="3"))


setup(ext_modules=ext_modules())
