"""The development broker: real produce/consume/commit, restart with data kept, the command line, broker choice."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from connector.config import KafkaSettings
from connector.devtools import kafka_broker, kafka_checksums, kafka_jars, kafka_local
from connector.devtools.kafka_local import (
    HOW_TO_GET_A_BROKER,
    KAFKA_VERSION,
    KafkaLocalError,
    LocalKafka,
    broker_ready,
    provide_broker,
)
from connector.kafka import Consumer, Partition, Producer, Record, ensure_topics

REPO = Path(__file__).resolve().parents[2]
TopicFactory = Callable[..., Awaitable[str]]


async def _ignore(_partitions: list[Partition]) -> None:
    return None


async def _fetch(consumer: Consumer, count: int, timeout: float = 60) -> list[Record]:
    """At least ``count`` records, then whatever else arrives within half a second."""
    records: list[Record] = []
    async with asyncio.timeout(timeout):
        while len(records) < count:
            records += await consumer.fetch(timeout_ms=500)
    records += await consumer.fetch(timeout_ms=500)
    return records


async def _produce(settings: KafkaSettings, topic: str, values: list[bytes]) -> None:
    producer = Producer(settings)
    await producer.start()
    try:
        await producer.send_many(topic, [(value, value, (("source", b"test"),)) for value in values])
    finally:
        await producer.stop()


async def _consume(settings: KafkaSettings, topic: str, group: str, count: int) -> tuple[Consumer, list[Record]]:
    consumer = Consumer(settings, group)
    await consumer.start([topic], _ignore, _ignore)
    try:
        return consumer, await _fetch(consumer, count)
    except BaseException:
        await consumer.stop()
        raise


@pytest.mark.integration
async def test_produce_consume_and_group_commit(kafka_settings: KafkaSettings, topic_factory: TopicFactory) -> None:
    """Records come back through a consumer group, and a second member resumes after the committed offsets."""
    topic = await topic_factory(partitions=2)
    group = f"group-{uuid.uuid4().hex[:8]}"
    values = [f"v{i}".encode() for i in range(10)]
    await _produce(kafka_settings, topic, values)

    consumer, records = await _consume(kafka_settings, topic, group, len(values))
    try:
        assert sorted(r.value for r in records if r.value) == sorted(values)
        assert all(r.header("source") == b"test" for r in records)
        offsets: dict[Partition, int] = {}
        for r in records:
            partition = Partition(r.topic, r.partition)
            offsets[partition] = max(offsets.get(partition, 0), r.offset + 1)
        await consumer.commit(offsets)
        assert {p: await consumer.committed(p) for p in offsets} == offsets
    finally:
        await consumer.stop()

    await _produce(kafka_settings, topic, [b"after-commit"])
    second, records = await _consume(kafka_settings, topic, group, 1)
    await second.stop()
    assert [r.value for r in records] == [b"after-commit"]


@pytest.mark.integration
async def test_restarted_broker_keeps_address_and_records(restartable_kafka: LocalKafka) -> None:
    """A broker stopped and started again answers on the same address with the records written before."""
    settings = KafkaSettings(bootstrap_servers=restartable_kafka.bootstrap)
    await ensure_topics(settings, {"kept": 1})
    await _produce(settings, "kept", [b"a", b"b", b"c"])

    await asyncio.to_thread(restartable_kafka.stop)
    assert not restartable_kafka.running
    assert not broker_ready("127.0.0.1", restartable_kafka.port, timeout=0.5)

    assert await asyncio.to_thread(restartable_kafka.start) == settings.bootstrap_servers
    consumer, records = await _consume(settings, "kept", "after-restart", 3)
    await consumer.stop()
    assert [r.value for r in records] == [b"a", b"b", b"c"]


@pytest.mark.integration
@pytest.mark.timeout(600)  # three CLI calls of up to 180 s each: their own timeouts should speak first
def test_cli_start_status_stop(tmp_path: Path) -> None:
    """`start` detaches and prints the address, `status` finds the broker, `stop` ends it; then status exits 3."""
    libs = kafka_jars.fetch_jars()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"kafka-{KAFKA_VERSION}").symlink_to(libs.parent)  # reuse the jars, keep the state separate
    env = {**os.environ, "CIO_CONNECTOR_CACHE": str(cache)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / "scripts" / "kafka-local"), *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    started = cli("start")
    try:
        assert started.returncode == 0, started.stderr
        assert re.fullmatch(r"127\.0\.0\.1:\d+\n", started.stdout)
        bootstrap = started.stdout.strip()
        assert (cache / "kafka-local.pid").exists()
        status = cli("status")
        assert (status.returncode, status.stdout.strip()) == (0, bootstrap)
        assert broker_ready("127.0.0.1", int(bootstrap.rpartition(":")[2]))
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert cli("status").returncode == 3
    assert not (cache / "kafka-local.pid").exists()


def test_configured_bootstrap_wins_and_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With KAFKA_BOOTSTRAP_SERVERS set, provide_broker yields it without looking for Docker or Java."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    monkeypatch.setattr(kafka_broker, "docker_reachable", lambda: pytest.fail("looked for Docker"))
    monkeypatch.setattr(kafka_broker, "java_major_version", lambda: pytest.fail("looked for Java"))
    with provide_broker() as bootstrap:
        assert bootstrap == "broker-1:9092,broker-2:9092"


@pytest.mark.parametrize("java", [None, 11])
def test_no_way_to_a_broker_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, java: int | None) -> None:
    """Without a configured broker, Docker or Java 17+, the error names every way to get a broker."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr(kafka_broker, "docker_reachable", lambda: False)
    monkeypatch.setattr(kafka_broker, "java_major_version", lambda: java)
    with (
        pytest.raises(KafkaLocalError, match="KAFKA_BOOTSTRAP_SERVERS unset, no Docker engine") as raised,
        provide_broker(),
    ):
        pass
    assert HOW_TO_GET_A_BROKER in str(raised.value)


def test_server_properties_describe_a_single_node_kraft_broker(tmp_path: Path) -> None:
    """Combined broker+controller on 127.0.0.1, replication factor 1, no initial rebalance delay."""
    kafka = LocalKafka(port=19092, data_dir=tmp_path)
    properties = dict(line.split("=", 1) for line in kafka.server_properties().splitlines())
    assert properties["process.roles"] == "broker,controller"
    assert properties["listeners"] == f"PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:{kafka.controller_port}"
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert properties["controller.quorum.voters"] == f"1@127.0.0.1:{kafka.controller_port}"
    assert properties["log.dirs"] == str(tmp_path / "kraft")
    assert properties["offsets.topic.replication.factor"] == "1"
    assert properties["transaction.state.log.replication.factor"] == "1"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    assert kafka.bootstrap == "127.0.0.1:19092"


def test_probe_is_false_when_nothing_listens() -> None:
    """broker_ready() answers False, without raising, for a closed port."""
    assert not broker_ready("127.0.0.1", kafka_broker._free_port(), timeout=0.5)


def _fake_jars(libs: Path, count: int = 3) -> dict[str, str]:
    """Writes ``count`` small jars into ``libs``; their SHA-256 by name."""
    libs.mkdir(parents=True)
    for index in range(count):
        (libs / f"lib-{index}-{KAFKA_VERSION}.jar").write_bytes(f"jar {index}".encode() * 1000)
    return kafka_jars.jar_digests(libs)


@pytest.fixture
def fetched_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache directory whose Maven fetch is complete, with jars matching a (patched) pinned table."""
    cache = tmp_path / "cache"
    home = cache / f"kafka-{KAFKA_VERSION}"
    monkeypatch.setattr(kafka_jars, "MAVEN_JARS_SHA256", _fake_jars(home / "libs"))
    (home / "complete.json").write_text(json.dumps({"version": KAFKA_VERSION, "source": "maven"}))
    monkeypatch.setenv("CIO_CONNECTOR_CACHE", str(cache))
    return home / "libs"


@pytest.mark.parametrize("tampering", ["altered", "added", "removed"])
def test_tampered_jar_in_the_cache_refuses_to_start(
    fetched_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tampering: str
) -> None:
    """A cached jar altered, added or removed after the fetch stops `kafka-local start` with one clear line."""
    assert kafka_jars.fetch_jars() == fetched_cache  # intact: accepted
    jar = next(iter(sorted(fetched_cache.glob("*.jar"))))
    if tampering == "altered":
        jar.write_bytes(jar.read_bytes() + b"\x00")
    elif tampering == "added":
        (fetched_cache / "evil-1.0.jar").write_bytes(b"PK")
    else:
        jar.unlink()

    with pytest.raises(KafkaLocalError) as raised:
        LocalKafka(data_dir=tmp_path / "data").start(timeout=5)
    assert len(str(raised.value).splitlines()) == 1
    expected = {"altered": "does not match its pinned SHA-256", "added": "unexpected jar", "removed": "missing"}
    assert expected[tampering] in str(raised.value)

    assert kafka_local.main(["start", "--data-dir", str(tmp_path / "data")]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("kafka-local: ")
    assert expected[tampering] in line
    assert not (tmp_path / "data" / "broker.log").exists()  # no JVM was started


def test_cached_jars_of_an_unpinned_version_are_refused(fetched_cache: Path) -> None:
    """Only KAFKA_VERSION has pinned checksums: another version's cached jars are not trusted."""
    other = fetched_cache.parent.parent / "kafka-0.0.1"
    fetched_cache.parent.rename(other)
    with pytest.raises(KafkaLocalError, match=re.escape("no pinned checksums for Kafka 0.0.1")):
        kafka_jars.fetch_jars("0.0.1")


def test_pinned_table_is_for_the_pinned_versions() -> None:
    """The table names the jars of KAFKA_VERSION and LOG4J_VERSION; a version bump without new digests fails."""
    table = kafka_checksums.MAVEN_JARS_SHA256
    assert f"kafka_{kafka_jars.SCALA_VERSION}-{KAFKA_VERSION}.jar" in table
    assert f"kafka-clients-{KAFKA_VERSION}.jar" in table
    assert f"log4j-slf4j-impl-{kafka_jars.LOG4J_VERSION}.jar" in table
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in table.values())
    assert f"kafka_{kafka_jars.SCALA_VERSION}-{KAFKA_VERSION}.tgz" in kafka_checksums.TARBALL_SHA512


@pytest.fixture
def tarball_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A local HTTP server in place of archive.apache.org, and no mvn: fetch_jars takes the tarball path."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(kafka_jars, "TARBALL_URL", f"http://127.0.0.1:{server.server_port}/kafka_{{s}}-{{v}}.tgz")
    monkeypatch.setattr("shutil.which", lambda _name: None)
    monkeypatch.setenv("CIO_CONNECTOR_CACHE", str(tmp_path / "cache"))
    yield served
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


def _release_tarball(served: Path, jars: Path) -> Path:
    tarball = served / f"kafka_{kafka_jars.SCALA_VERSION}-{KAFKA_VERSION}.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for jar in sorted(jars.glob("*.jar")):
            tar.add(jar, arcname=f"kafka/libs/{jar.name}")
    return tarball


def test_tarball_not_matching_its_pinned_sha512_is_not_unpacked(tarball_server: Path, tmp_path: Path) -> None:
    """A tarball other than the pinned release (a compromised mirror) is refused, even with a matching .sha512."""
    _fake_jars(tmp_path / "jars")
    tarball = _release_tarball(tarball_server, tmp_path / "jars")
    published = hashlib.sha512(tarball.read_bytes()).hexdigest()
    (tarball_server / f"{tarball.name}.sha512").write_text(f"{published}  {tarball.name}\n")
    with pytest.raises(KafkaLocalError, match="does not match its pinned SHA-512") as raised:
        kafka_jars.fetch_jars()
    assert len(str(raised.value).splitlines()) == 1
    assert not (kafka_jars.cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs").exists()


def test_pinned_tarball_is_unpacked_and_its_jars_checked_on_each_start(
    tarball_server: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pinned tarball's jars are recorded when unpacked; one altered later refuses the next start."""
    digests = _fake_jars(tmp_path / "jars")
    tarball = _release_tarball(tarball_server, tmp_path / "jars")
    monkeypatch.setattr(kafka_jars, "TARBALL_SHA512", {tarball.name: hashlib.sha512(tarball.read_bytes()).hexdigest()})
    libs = kafka_jars.fetch_jars()
    assert kafka_jars.jar_digests(libs) == digests
    assert kafka_jars.fetch_jars() == libs

    jar = next(iter(sorted(libs.glob("*.jar"))))
    jar.write_bytes(b"tampered")
    with pytest.raises(KafkaLocalError, match=re.escape(f"{jar.name} does not match its pinned SHA-256")):
        kafka_jars.fetch_jars()


def test_cli_usage_error_exits_2() -> None:
    """An unknown command is a usage error."""
    result = subprocess.run(
        [sys.executable, "-m", "connector.devtools.kafka_local", "bogus"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
