"""Optional compiled build of the sink's pure mapping layer (pyproject.toml holds everything else).

    CIO_CONNECTOR_COMPILE=1 pip wheel --no-build-isolation --no-deps -w dist .   # needs mypy installed

compiles the package below with mypyc (shipped with mypy) into C extensions; the wheel still carries the
.py sources, and nothing else changes. Without the variable this file adds nothing and the package is pure
Python, which is what an editable development install must be (a compiled module would shadow edits).
Measured by bench/mapping.py and bench/sink_path.py; tested by tests/test_compiled.py.
"""

import os

from setuptools import setup

# The sink's pure mapping layer, as a whole: fully typed, no I/O (tests/test_layout.py), decode → map →
# validate → serialize, the per-message CPU of the sink. mypyc compiles every module under the directory.
COMPILED_PACKAGES = [
    "connector/sink/mapping",
]


def ext_modules() -> list[object]:
    if os.environ.get("CIO_CONNECTOR_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    return list(mypycify(COMPILED_PACKAGES, opt_level="3"))


setup(ext_modules=ext_modules())
