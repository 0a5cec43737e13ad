"""Apache Kafka's jars for the development broker, fetched once into the cache (standard library only).

Maven resolves ``kafka_2.13:KAFKA_VERSION`` (plus the log4j binding) into the cache once, a marker file
lets later calls skip Maven; without ``mvn`` the Apache release tarball is downloaded. Concurrent callers
are serialized by a file lock. Cache: ``$CIO_CONNECTOR_CACHE`` or ``~/.cache/cio-connector``.

Every start checks the jars against pinned digests (``kafka_checksums``): Maven's against the pinned
SHA-256 of each artifact, the tarball against its pinned SHA-512 (its jars then against the digests recorded
when it was unpacked). A missing, extra or altered jar refuses to start the broker, in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from connector.devtools.kafka_checksums import MAVEN_JARS_SHA256, TARBALL_SHA512

KAFKA_VERSION = "4.1.2"
SCALA_VERSION = "2.13"
# The log4j2 version kafka-server KAFKA_VERSION depends on (bump them together): its slf4j 1.7 binding is
# not a Kafka dependency, and without it the broker logs nothing.
LOG4J_VERSION = "2.25.3"
MAVEN_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
TARBALL_URL = "https://archive.apache.org/dist/kafka/{v}/kafka_{s}-{v}.tgz"
_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cio-connector</groupId>
  <artifactId>kafka-local</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId><version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


class KafkaLocalError(RuntimeError):
    """No broker could be fetched, started or found. The first line of ``str()`` is the summary."""


def cache_dir() -> Path:
    """Where jars and the command line's state live."""
    return Path(os.environ.get("CIO_CONNECTOR_CACHE") or Path.home() / ".cache" / "cio-connector")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


def fetch_jars(version: str = KAFKA_VERSION) -> Path:
    """The directory holding the broker's verified jars; fetched once per version, safe with concurrent callers.

    Raises KafkaLocalError when a jar does not match its pinned digest, even one fetched on an earlier run.
    """
    home = cache_dir() / f"kafka-{version}"
    libs, marker = home / "libs", home / "complete.json"
    if marker.exists():
        return _verified(libs, marker)
    with _file_lock(cache_dir() / f"kafka-{version}.lock"):
        if marker.exists():  # another process fetched while this one waited for the lock
            return _verified(libs, marker)
        shutil.rmtree(home, ignore_errors=True)  # whatever an interrupted fetch left behind
        staging = home / "libs.partial"
        staging.mkdir(parents=True)
        began = time.monotonic()
        mvn = shutil.which("mvn")
        if mvn:
            source = _fetch_with_maven(mvn, version, home, staging)
            verify_jars(staging, _pinned_maven_jars(version))
            unpacked: dict[str, str] = {}
        else:
            source = _fetch_tarball(version, home, staging)
            unpacked = jar_digests(staging)
        staging.rename(libs)
        seconds = round(time.monotonic() - began, 1)
        record = {"version": version, "source": source, "seconds": seconds}
        if unpacked:
            record["jars_sha256"] = unpacked
        marker.write_text(json.dumps(record) + "\n")
    return libs


def jar_digests(libs: Path) -> dict[str, str]:
    """SHA-256 (hex) of every jar in ``libs``, by file name."""
    digests = {}
    for jar in sorted(libs.glob("*.jar")):
        digest = hashlib.sha256()
        with jar.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        digests[jar.name] = digest.hexdigest()
    return digests


def verify_jars(libs: Path, expected: dict[str, str]) -> None:
    """Raise KafkaLocalError (one line) unless ``libs`` holds exactly the ``expected`` jars, byte for byte.

    An extra jar is refused like an altered one: everything in ``libs`` is on the broker's class path.
    """
    found = jar_digests(libs)
    refetch = f"delete {libs.parent} to fetch again"
    for name in sorted(expected.keys() - found.keys()):
        raise KafkaLocalError(f"Kafka jar {name} is missing from {libs}; {refetch}")
    for name in sorted(found.keys() - expected.keys()):
        raise KafkaLocalError(f"unexpected jar {name} in {libs} (not among the pinned Kafka jars); {refetch}")
    for name, digest in sorted(found.items()):
        if digest != expected[name]:
            raise KafkaLocalError(
                f"Kafka jar {libs / name} does not match its pinned SHA-256 (got {digest}); refusing to start; {refetch}"
            )


def _pinned_maven_jars(version: str) -> dict[str, str]:
    if version != KAFKA_VERSION:
        raise KafkaLocalError(f"no pinned checksums for Kafka {version} (only {KAFKA_VERSION}): see kafka_checksums.py")
    return MAVEN_JARS_SHA256


def _verified(libs: Path, marker: Path) -> Path:
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError) as exc:
        raise KafkaLocalError(f"unreadable {marker} ({exc}); delete {marker.parent} to fetch again") from exc
    jars = record.get("jars_sha256") if isinstance(record, dict) else None
    # Maven's jars against the pinned table; a pinned tarball's against what was recorded when it was unpacked.
    verify_jars(libs, jars if isinstance(jars, dict) else _pinned_maven_jars(marker.parent.name.removeprefix("kafka-")))
    return libs


def _fetch_with_maven(mvn: str, version: str, home: Path, out: Path) -> str:
    pom = home / "pom.xml"
    pom.write_text(_POM.format(kafka=version, scala=SCALA_VERSION, log4j=LOG4J_VERSION))
    goal = f"{MAVEN_PLUGIN}:copy-dependencies"
    argv = [mvn, "-q", "-B", "-f", str(pom), goal, f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)  # noqa: S603 — fixed argv
    if result.returncode != 0:
        output = _tail(result.stdout + result.stderr)
        raise KafkaLocalError(f"mvn could not resolve the Kafka {version} jars (exit {result.returncode})\n{output}")
    return "maven"


def _fetch_tarball(version: str, home: Path, out: Path) -> str:
    url = TARBALL_URL.format(v=version, s=SCALA_VERSION)
    archive = home / url.rsplit("/", 1)[1]
    # Pinned, not read from the ``.sha512`` next to the tarball: whoever can swap one can swap the other.
    expected = TARBALL_SHA512.get(archive.name)
    if expected is None:
        raise KafkaLocalError(f"no pinned SHA-512 for {archive.name}: see kafka_checksums.py")
    digest = hashlib.sha512()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as file:  # noqa: S310
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                file.write(chunk)
    except OSError as exc:
        raise KafkaLocalError(f"cannot download {url}: {exc}") from exc
    if digest.hexdigest() != expected:
        archive.unlink()
        raise KafkaLocalError(f"{url} does not match its pinned SHA-512 (got {digest.hexdigest()}); not unpacked")
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            # Only <top>/libs/<name>.jar, written by base name: nothing can land outside ``out``.
            parts = member.name.split("/")
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted and len(parts) == 3 and parts[1] == "libs" and parts[2].endswith(".jar"):
                (out / parts[2]).write_bytes(extracted.read())
    archive.unlink()
    return url
