"""Apache Kafka's jars for the development broker, fetched once into the cache (standard library only).

Maven resolves ``kafka_2.13:KAFKA_VERSION`` (plus the log4j binding) into the cache once, a marker file
lets later calls skip Maven; without ``mvn`` the Apache release tarball is downloaded and its SHA-512
checked. Cache: ``$CIO_CONNECTOR_CACHE`` or ``~/.cache/cio-connector``. Concurrent callers are serialized
by a file lock.
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
    """The directory holding the broker's jars; resolved once per version, safe with concurrent callers."""
    home = cache_dir() / f"kafka-{version}"
    libs, marker = home / "libs", home / "complete.json"
    if marker.exists():
        return libs
    with _file_lock(cache_dir() / f"kafka-{version}.lock"):
        if marker.exists():  # another process fetched while this one waited for the lock
            return libs
        shutil.rmtree(home, ignore_errors=True)  # whatever an interrupted fetch left behind
        staging = home / "libs.partial"
        staging.mkdir(parents=True)
        began = time.monotonic()
        mvn = shutil.which("mvn")
        source = _fetch_with_maven(mvn, version, home, staging) if mvn else _fetch_tarball(version, home, staging)
        staging.rename(libs)
        seconds = round(time.monotonic() - began, 1)
        marker.write_text(json.dumps({"version": version, "source": source, "seconds": seconds}) + "\n")
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
    digest = hashlib.sha512()
    try:
        with urllib.request.urlopen(url + ".sha512", timeout=60) as response:  # noqa: S310 — fixed https URL
            expected = _parse_sha512(response.read().decode())
        with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as file:  # noqa: S310
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                file.write(chunk)
    except OSError as exc:
        raise KafkaLocalError(f"cannot download {url}: {exc}") from exc
    if digest.hexdigest() != expected:
        raise KafkaLocalError(f"checksum mismatch for {url}")
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            # Only <top>/libs/<name>.jar, written by base name: nothing can land outside ``out``.
            parts = member.name.split("/")
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted and len(parts) == 3 and parts[1] == "libs" and parts[2].endswith(".jar"):
                (out / parts[2]).write_bytes(extracted.read())
    archive.unlink()
    return url


def _parse_sha512(text: str) -> str:
    # Apache publishes either ``name: HEX HEX …`` (gpg --print-md) or ``hex  name`` (sha512sum).
    text = text.split(":", 1)[1] if ":" in text else text.split(maxsplit=1)[0]
    return "".join(text.split()).lower()
