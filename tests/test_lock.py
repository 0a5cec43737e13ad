"""requirements/*.txt: the hashed locks cover pyproject.toml, agree with each other, and pin everything by hash.

`make venv` (so CI) installs requirements/test.txt and the image installs runtime.txt and build.txt, all with
``--require-hashes``. These tests catch a dependency added to pyproject.toml without `make lock`, which would
otherwise only show as an install failure in the image build.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(?:\s*;[^\\]*)?\s*\\?$")


def parse_lock(text: str) -> dict[str, tuple[str, int]]:
    """``{name: (version, number of hashes)}`` of a pip-compile output with ``--generate-hashes``."""
    pins: dict[str, tuple[str, int]] = {}
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if match := _PIN.match(line):
            current = canonicalize_name(match[1])
            assert current not in pins, f"{current} pinned twice"
            pins[current] = (match[2], 0)
        elif stripped.startswith("--hash=sha256:") and current is not None:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif stripped and not stripped.startswith("#"):
            raise AssertionError(f"unexpected line in a lock file: {line!r}")
    return pins


def _lock(name: str) -> dict[str, tuple[str, int]]:
    return parse_lock((LOCKS / name).read_text(encoding="utf-8"))


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def _requirements(group: str | None) -> list[Requirement]:
    project = _project()
    if group is None:
        raw = project["dependencies"]
    else:
        extras = project["optional-dependencies"]
        assert isinstance(extras, dict)
        raw = extras[group]
    assert isinstance(raw, list)
    return [Requirement(text) for text in raw]


def _extra_requirements(requirement: Requirement) -> list[Requirement]:
    """What the extras named on a requirement (``aiokafka[zstd]``) add, from the installed distribution."""
    added = []
    for text in metadata.requires(requirement.name) or []:
        dependency = Requirement(text)
        marker = dependency.marker
        if (
            marker
            and not marker.evaluate({"extra": ""})
            and any(marker.evaluate({"extra": e}) for e in requirement.extras)
        ):
            added.append(dependency)
    return added


@pytest.mark.parametrize(("lock", "groups"), [("runtime.txt", [None]), ("test.txt", [None, "test"])])
def test_lock_pins_every_dependency_of_pyproject(lock: str, groups: list[str | None]) -> None:
    """Each dependency (and each extra it names) of pyproject.toml is pinned, at a version it allows."""
    pins = _lock(lock)
    for group in groups:
        for requirement in _requirements(group):
            for needed in [requirement, *_extra_requirements(requirement)]:
                name = canonicalize_name(needed.name)
                assert name in pins, f"{needed} (pyproject.toml) is not in requirements/{lock}: run make lock"
                version = pins[name][0]
                assert needed.specifier.contains(version, prereleases=True), (
                    f"requirements/{lock} pins {name}=={version}, outside {needed}: run make lock"
                )


def test_every_pin_has_hashes() -> None:
    """pip's --require-hashes refuses a lock with an unhashed entry; check it here, before an install does."""
    for lock in ("runtime.txt", "test.txt", "build.txt"):
        pins = _lock(lock)
        assert pins, lock
        assert all(hashes >= 1 for _, hashes in pins.values()), lock


def test_image_runs_the_versions_the_tests_ran() -> None:
    """runtime.txt and build.txt pin the same versions as test.txt (they are compiled with it as a constraint)."""
    test = {name: version for name, (version, _) in _lock("test.txt").items()}
    for lock in ("runtime.txt", "build.txt"):
        for name, (version, _) in _lock(lock).items():
            assert test.get(name) == version, f"requirements/{lock} pins {name}=={version}, test.txt {test.get(name)}"


def test_installed_environment_is_the_lock() -> None:
    """This venv was installed from test.txt: what pytest runs with is what the lock says."""
    for name, (version, _) in _lock("test.txt").items():
        assert metadata.version(name) == version, f"{name}: installed {metadata.version(name)}, locked {version}"


def test_parse_lock_reads_pins_hashes_and_markers() -> None:
    """The parser counts hashes per pin and accepts environment markers and comments."""
    text = (
        "# header\n"
        "Foo_Bar==1.2 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via x\n"
        'tomli==2.0 ; python_version < "3.11" \\\n    --hash=sha256:cc\n'
    )
    assert parse_lock(text) == {"foo-bar": ("1.2", 2), "tomli": ("2.0", 1)}
