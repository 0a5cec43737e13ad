"""The package layout keeps its promises: no import cycles, a mapping layer without I/O, and compiled code
that is synchronous.

Imports are read from the sources (``ast``), so ``if TYPE_CHECKING:`` blocks and imports inside functions
count too: a cycle that only type checkers see is still a cycle in the design.

What setup.py compiles with mypyc is the mapping layer and the sink engine's synchronous hot path around
it (record path, tickets, routing, batcher, offsets): pure code, with no coroutine and no import of an
I/O library. Those may use the value types of ``connector.kafka`` (its NamedTuples), not its clients.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "connector"
MAPPING = "connector.sink.mapping"
IO_MODULES = ("asyncio", "aiohttp", "aiokafka")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The connector modules ``path`` names in any import statement, wherever it stands in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from connector.sink.mapping import identifiers``: the submodule, when it is one.
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return {module for module in found if module in known and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, …, a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_reports_a_type_only_cycle() -> None:
    """The checker itself sees a cycle closed only under TYPE_CHECKING (as mapping ↔ devices once was)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_imports_are_read(tmp_path: Path) -> None:
    """An import under ``if TYPE_CHECKING:`` or inside a function is an edge of the graph."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from connector.x import A\n"
        "def f():\n    import connector.y\n"
    )
    assert _imports(source, "connector.m", {"connector.x", "connector.y", "connector.m"}) == {
        "connector.x",
        "connector.y",
    }


def test_no_import_cycles_in_the_connector() -> None:
    """No module of connector/ reaches itself through imports, TYPE_CHECKING ones included."""
    graph = _graph()
    assert len(graph) > 50, "the package was not found"
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_mapping_layer_imports_nothing_from_the_engine() -> None:
    """connector.sink.mapping depends only on itself, config and errors: the engine imports it, not back."""
    graph = _graph()
    allowed_prefixes = (MAPPING, "connector.config", "connector.errors")
    for name, targets in graph.items():
        if name == MAPPING or name.startswith(MAPPING + "."):
            outside = sorted(t for t in targets if not t.startswith(allowed_prefixes))
            assert not outside, f"{name} imports {outside}"


def test_mapping_layer_loads_no_io_library() -> None:
    """Importing every module of the mapping layer loads none of asyncio, aiohttp, aiokafka."""
    names = sorted(n for n in _modules() if n == MAPPING or n.startswith(MAPPING + "."))
    assert len(names) >= 12, names
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {IO_MODULES!r}))\n"
    )
    # -I: neither the user's site nor PYTHON* variables may preload anything; the checkout is the cwd.
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r})\n" + script],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", result.stdout


def _compiled_sources() -> list[Path]:
    """The files setup.py compiles: each listed file, and every module under each listed package."""
    listed = [line.strip().strip('",') for line in (ROOT / "setup.py").read_text().splitlines()]
    entries = [ROOT / entry for entry in listed if entry.startswith("connector/")]
    return [path for entry in entries for path in ([entry] if entry.suffix == ".py" else sorted(entry.rglob("*.py")))]


def _io_in(path: Path) -> list[str]:
    """What makes a module unfit for the compiled set: coroutines, and imports of an I/O library."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)):
            found.append(f"line {node.lineno}: {type(node).__name__}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"line {node.lineno}: imports {n}" for n in names if n.split(".")[0] in IO_MODULES]
    return found


def test_io_finder_reports_coroutines_and_io_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import asyncio.queues\nfrom aiohttp import web\nasync def f():\n    await g()\n")
    assert _io_in(source) == [
        "line 1: imports asyncio.queues",
        "line 2: imports aiohttp",
        "line 3: AsyncFunctionDef",
        "line 4: Await",
    ]


def test_compiled_modules_are_synchronous_and_import_no_io_library() -> None:
    """Every module setup.py compiles has no coroutine and imports none of asyncio, aiohttp, aiokafka."""
    sources = _compiled_sources()
    assert len(sources) >= 12, sources
    for path in sources:
        assert not _io_in(path), f"{path.relative_to(ROOT)}: {_io_in(path)}"
