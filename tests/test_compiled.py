"""The mypyc-compiled variant of the mapping layer (setup.py, scripts/build-compiled) behaves like the sources.

mypyc enforces type annotations at run time, so a compiled module can raise where the source would not
(a list passed where ``dict`` is declared, a ``bytearray`` where ``bytes`` is). This builds the compiled
tree once, then checks that every listed module really is compiled, that the pure-layer test modules pass
against it, and that it produces byte-for-byte the same operations as the sources on sample traffic.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import MappingSettings
from connector.devtools.samples import SampleEvents
from connector.sink.mapping.mapper import map_message
from connector.sink.mapping.model import MessageContext

ROOT = Path(__file__).resolve().parent.parent
PURE_LAYER_TESTS = [
    "tests/sink/test_mapping.py",
    "tests/sink/test_mapping_properties.py",
    "tests/sink/test_v1calls_mapping.py",
    "tests/sink/test_decode.py",
    "tests/sink/test_shapes.py",
    "tests/sink/test_timestamps.py",
    "tests/sink/test_ulid.py",
    "tests/sink/test_identifiers.py",
    "tests/sink/test_transactional.py",
    "tests/sink/test_routing.py",
    "tests/test_layout.py",
]
SAMPLES = 3_000
# The mypyc build (no bound of its own) plus a 600 s pytest run of the pure-layer tests, on a busy machine.
pytestmark = pytest.mark.timeout(1200)

# Maps SAMPLES sample messages (plus a few odd ones) and prints a digest of every outcome.
DIGEST_SCRIPT = f"""
import hashlib
import connector.sink.mapping.mapper as mapping
from connector.config import MappingSettings
from connector.devtools.samples import SampleEvents
from connector.sink.mapping.model import MessageContext
assert not mapping.__file__.endswith(".py"), mapping.__file__
samples = SampleEvents(seed=3, users=500)
digest = hashlib.sha256()
settings = MappingSettings()
odd = [[], "x", {{"type": "track"}}, {{"type": "identify", "userId": "u", "traits": {{"a": [1, {{"b": None}}]}}}}]
for i, message in enumerate([samples.message(1_735_689_600_000 + i) for i in range({SAMPLES})] + odd):
    result = mapping.map_message(message, MessageContext("t", 0, i, 0, 1_735_689_600_000), settings)
    digest.update(repr(result).encode())
print(digest.hexdigest())
"""


def _pure_digest() -> str:
    samples = SampleEvents(seed=3, users=500)
    digest = hashlib.sha256()
    settings = MappingSettings()
    odd: list[object] = [
        [],
        "x",
        {"type": "track"},
        {"type": "identify", "userId": "u", "traits": {"a": [1, {"b": None}]}},
    ]
    messages: list[object] = [samples.message(1_735_689_600_000 + i) for i in range(SAMPLES)]
    for i, message in enumerate(messages + odd):
        result = map_message(message, MessageContext("t", 0, i, 0, 1_735_689_600_000), settings)
        digest.update(repr(result).encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def compiled_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("compiled")
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "scripts" / "build-compiled"), str(tree)], check=True, env=env, capture_output=True)
    return tree


def _run_in_tree(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -P: the working directory (the checkout, with the sources) must not come before the compiled tree.
    # Without COVERAGE_*: compiled modules cannot be measured, so coverage in this child would only slow it.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-P", *args]
    return subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_every_listed_module_is_compiled(compiled_tree: Path) -> None:
    """Every module of every package setup.py lists has a compiled extension in the built tree."""
    source = (ROOT / "setup.py").read_text()
    listed = [line.strip().strip('",') for line in source.splitlines() if line.strip().startswith('"connector/')]
    assert listed, "setup.py lists no packages"
    modules = [path for package in listed for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(modules) >= 12, modules  # the whole mapping layer, not a stray file
    for module in modules:
        stem = module.relative_to(ROOT).with_suffix("")
        built = list((compiled_tree / stem.parent).glob(f"{stem.name}.cpython-*.so"))
        assert built, f"{stem}.py was not compiled"


def test_pure_layer_tests_pass_against_the_compiled_modules(compiled_tree: Path, tmp_path: Path) -> None:
    # Run alongside them: proves the session imported the compiled modules, not the checkout's sources.
    probe = tmp_path / "test_probe_compiled.py"
    probe.write_text(
        "import connector.sink.mapping.mapper as mapping\n\n\n"
        "def test_the_compiled_modules_are_imported():\n"
        "    assert not mapping.__file__.endswith('.py'), mapping.__file__\n"
    )
    result = _run_in_tree(
        compiled_tree,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        f"pythonpath={compiled_tree}",
        *PURE_LAYER_TESTS,
        str(probe),
        # The App API sender's rate-limit test (not the mapping layer) depends on wall time under load.
        "--deselect",
        "tests/sink/test_transactional.py::test_rate_limiter_is_per_workspace",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_compiled_mapping_gives_the_same_operations_as_the_sources(compiled_tree: Path) -> None:
    result = _run_in_tree(compiled_tree, "-c", DIGEST_SCRIPT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == _pure_digest()
