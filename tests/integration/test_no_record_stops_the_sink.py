"""No record can stop the sink: hostile records through the real `cio-connector sink` process and broker.

One sink process (the real CLI, as deployed) consumes an input topic and a transactional topic for the
whole module, against the fake Customer.io on real sockets. Every scenario produces hostile records mixed
with valid ones, then waits until the group's committed offset reaches the end of every partition. It
holds when every record was resolved: delivered, filtered, or dead-lettered with a reason. A partition
that stalls never gets there; a sink that crashes is caught by its exit status.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from connector.config import KafkaSettings
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from connector.kafka import Producer, ensure_topics
from tests.integration.harness import committed_and_end, connector_env, read_all, start_process
from tests.integration.poison_corpus import (
    KafkaRecord,
    extremes,
    kafka_records,
    track,
    transactional,
    transactional_extremes,
)

pytestmark = pytest.mark.integration

INPUT_PARTITIONS = 4
TXN_PARTITIONS = 2
SETTLE_SECONDS = 120.0  # generous: the machine is shared, and a stalled partition never settles anyway
WORKSPACE = Workspace("demo", "demo-site", "demo-key", "us", app_api_key="demo-app-key")


class FakeInThread:
    """The fake Customer.io served from its own event loop in a thread, for a module of sync tests."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self.fake = FakeCustomerIO([WORKSPACE])
        self._thread = threading.Thread(target=self._serve, name="fake-cio", daemon=True)

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.fake:
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> FakeCustomerIO:
        self._thread.start()
        if not self._started.wait(30):
            raise AssertionError("the fake Customer.io did not start within 30 s")
        return self.fake

    def __exit__(self, *_: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)
        self._loop.close()


@dataclass
class PoisonSink:
    """The running sink process and where it reads and writes."""

    kafka: KafkaSettings
    process: subprocess.Popen[bytes]
    metrics_url: str
    group: str
    input_topic: str
    txn_topic: str
    dlq_topic: str
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of metric ``name`` by its sorted labels, scraped from the process's /metrics."""
        with urllib.request.urlopen(f"{self.metrics_url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
            text = response.read().decode()
        found: dict[tuple[tuple[str, str], ...], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    found[tuple(sorted(sample.labels.items()))] = sample.value
        return found


async def _produce(kafka: KafkaSettings, topic: str, records: list[KafkaRecord]) -> None:
    producer = Producer(kafka, linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(records), 500):
            chunk = records[start : start + 500]
            await producer.send_many(topic, [(k, v, h) for k, v, h in chunk])
    finally:
        await producer.stop()


async def _settled(sink: PoisonSink, topic: str, partitions: int) -> list[tuple[int, int]]:
    """(committed, end) per partition, once every partition is committed to its end, or the last reading."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        positions = await committed_and_end(sink.kafka, sink.group, topic, partitions)
        if all(committed == end for committed, end in positions) or loop.time() > deadline or not sink.alive():
            return positions
        await asyncio.sleep(0.25)  # polling the broker's committed offsets, not a synchronization sleep


def _assert_all_committed(sink: PoisonSink, records: list[KafkaRecord], txn_records: list[KafkaRecord]) -> None:
    async def scenario() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        await _produce(sink.kafka, sink.input_topic, records)
        await _produce(sink.kafka, sink.txn_topic, txn_records)
        return (
            await _settled(sink, sink.input_topic, INPUT_PARTITIONS),
            await _settled(sink, sink.txn_topic, TXN_PARTITIONS),
        )

    plain, txn = asyncio.run(scenario())
    assert sink.alive(), f"the sink exited:\n{sink.log_tail()}"
    assert all(c == e for c, e in plain), f"input partitions stalled (committed, end): {plain}\n{sink.log_tail()}"
    assert all(c == e for c, e in txn), f"transactional partitions stalled: {txn}\n{sink.log_tail()}"


def _assert_every_record_accounted_for(sink: PoisonSink) -> None:
    """Consumed = delivered + dead-lettered + filtered (+ skipped) per topic; every dead letter has its reason."""
    consumed = sink.samples("connector_records_consumed_total")
    completed = sink.samples("connector_records_completed_total")
    for topic in (sink.input_topic, sink.txn_topic):
        took = sum(v for labels, v in consumed.items() if ("topic", topic) in labels)
        done = sum(v for labels, v in completed.items() if ("topic", topic) in labels)
        assert took == done, f"{topic}: consumed {took}, resolved {done}"
    dead = sum(v for labels, v in completed.items() if ("outcome", "dead_lettered") in labels)
    letters = asyncio.run(read_all(sink.kafka, sink.dlq_topic, expect=int(dead), timeout=60))
    assert len(letters) == dead
    for letter in letters:
        reason = letter.header("cio-dlq-reason")
        assert reason, f"dead letter without a reason: {letter.headers}"
        assert re.fullmatch(rb"[a-z0-9_]+", reason), reason


def _wait_until_assigned(sink: PoisonSink) -> None:
    """Until the sink process owns partitions (its metrics say so), or fail with its log."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sink.alive():
        try:
            if sum(sink.samples("connector_partitions_assigned").values()) > 0:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise AssertionError(f"the sink did not get partitions within 60 s:\n{sink.log_tail()}")


@pytest.fixture(scope="module")
def poison_sink(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoisonSink]:
    """`cio-connector sink` as its own process over an input and a transactional topic."""
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    suffix = uuid.uuid4().hex[:10]
    input_topic, txn_topic, dlq_topic = f"poison-in-{suffix}", f"poison-txn-{suffix}", f"poison-dlq-{suffix}"
    asyncio.run(ensure_topics(kafka, {input_topic: INPUT_PARTITIONS, txn_topic: TXN_PARTITIONS, dlq_topic: 1}))
    log = tmp_path_factory.mktemp("poison") / "sink.log"
    with FakeInThread() as fake:
        env = connector_env(
            kafka_bootstrap,
            fake,
            [input_topic, txn_topic],
            dlq_topic,
            CIO_APP_API_KEY="demo-app-key",
            CONNECTOR_TRANSACTIONAL_TOPIC=txn_topic,
            LOG_LEVEL="WARNING",
        )
        process = start_process(env, "sink", log)
        sink = PoisonSink(
            kafka,
            process,
            f"http://127.0.0.1:{env['CONNECTOR_METRICS_PORT']}",
            env["CONNECTOR_GROUP_ID"],
            input_topic,
            txn_topic,
            dlq_topic,
            log,
        )
        try:
            _wait_until_assigned(sink)
            yield sink
        finally:
            process.terminate()
            code = process.wait(60)
        assert code == 0, f"the sink did not stop cleanly (exit {code}):\n{sink.log_tail()}"


def _valid(count: int, tag: str) -> list[KafkaRecord]:
    """Valid track records, keyed by their user."""
    return [(f"{tag}-{i}".encode(), orjson.dumps(track(f"{tag}-{i}", seq=i)), ()) for i in range(count)]


def test_hand_picked_extremes_all_end_committed(poison_sink: PoisonSink) -> None:
    """Each known-hostile record (1 MiB values, deep nesting, Unicode digits, huge ints, NaN, invalid UTF-8,
    odd headers, hostile transactional sends) is resolved, and the valid records after it are committed."""
    records: list[KafkaRecord] = []
    for i, record in enumerate(extremes()):
        records.append(record)
        records.extend(_valid(2, f"after-{i}"))
    txn_records: list[KafkaRecord] = []
    for i, record in enumerate(transactional_extremes()):
        txn_records.append(record)
        txn_records.append((b"ok", orjson.dumps(transactional(transactional_message_id=7, to=f"u{i}@example.com")), ()))
    _assert_all_committed(poison_sink, records, txn_records)
    _assert_every_record_accounted_for(poison_sink)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(records=st.lists(kafka_records, min_size=1, max_size=30), txn=st.lists(kafka_records, max_size=10))
def test_arbitrary_records_all_end_committed(
    poison_sink: PoisonSink, records: list[KafkaRecord], txn: list[KafkaRecord]
) -> None:
    """Any records, valid or not, on either topic: all end committed and the sink keeps running."""
    _assert_all_committed(poison_sink, [*records, *_valid(1, "tail")], txn)
    _assert_every_record_accounted_for(poison_sink)
