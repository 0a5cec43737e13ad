"""The mypyc-compiled modules (setup.py, scripts/build-compiled) behave like the sources.

Compiled: the mapping layer and the sink engine's synchronous hot path (record path, tickets, routing,
batcher, offsets, wire-format decoding). mypyc enforces type annotations at run time, so a compiled module
can raise where the source would not (a list passed where ``dict`` is declared, a ``bytearray`` where
``bytes`` is), and a compiled class cannot be subclassed from Python unless it says so. This builds the
compiled tree once, then checks that every listed module really is compiled, that the test modules of
those modules (engine tests that subclass a compiled class included) pass with the compiled modules
imported, and that it produces byte-for-byte the same operations as the sources on sample traffic.
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
COMPILED_MODULE_TESTS = [
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
    # The engine's compiled modules, alone and driven by the in-memory sink (runner and delivery interpreted).
    "tests/sink/test_batcher.py",
    "tests/sink/test_offsets.py",
    "tests/sink/test_framed.py",
    "tests/sink/test_batch_completion.py",
    "tests/sink/test_poison_records.py",  # subclasses the compiled Router
    "tests/sink/test_runner.py",
    "tests/sink/test_map_agrees_with_sink.py",
]
SAMPLES = 3_000
# The mypyc build (no bound of its own) plus a 600 s pytest run of the compiled modules' tests, on a busy machine.
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


def _listed_modules() -> list[Path]:
    """The source files setup.py compiles: each listed file, and every module under each listed package."""
    source = (ROOT / "setup.py").read_text()
    listed = [line.strip().strip('",') for line in source.splitlines() if line.strip().startswith('"connector/')]
    assert listed, "setup.py lists no packages"
    return [
        path
        for entry in listed
        for path in ([ROOT / entry] if entry.endswith(".py") else sorted((ROOT / entry).rglob("*.py")))
    ]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_listed_module_is_compiled(compiled_tree: Path) -> None:
    """Every module setup.py lists (files, and every module of each package) has a compiled extension."""
    modules = _listed_modules()
    names = {_module_name(path) for path in modules}
    assert len(modules) >= 12, modules  # the whole mapping layer, not a stray file
    # The engine's hot path, not only the mapping layer: the per-record bookkeeping around the mapper.
    engine = {"record_path", "tickets", "batcher", "offsets", "routing", "framed"}
    assert {f"connector.sink.{name}" for name in engine} <= names, sorted(names)
    for module in modules:
        stem = module.relative_to(ROOT).with_suffix("")
        built = list((compiled_tree / stem.parent).glob(f"{stem.name}.cpython-*.so"))
        assert built, f"{stem}.py was not compiled"


def test_module_tests_pass_against_the_compiled_modules(compiled_tree: Path, tmp_path: Path) -> None:
    # Run alongside them: proves the session imported every listed module compiled, not the checkout's sources.
    names = sorted(_module_name(path) for path in _listed_modules())
    probe = tmp_path / "test_probe_compiled.py"
    probe.write_text(
        "import importlib\n\n\n"
        "def test_the_compiled_modules_are_imported():\n"
        f"    for name in {names!r}:\n"
        "        module = importlib.import_module(name)\n"
        "        assert not module.__file__.endswith('.py'), module.__file__\n"
    )
    result = _run_in_tree(
        compiled_tree,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        f"pythonpath={compiled_tree} {ROOT}",  # the checkout after the tree: tests import tests.sink helpers
        *COMPILED_MODULE_TESTS,
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
