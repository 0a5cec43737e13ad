"""One memory bound per process: the real ``Sink`` over many workspaces, delivering to the fake over HTTP.

Kafka is replaced by an in-memory log with the consumer methods the runner uses (fetch, pause, resume,
commit), so the test can look at every workspace's buffer at each fetch; Customer.io is the project's fake,
in this event loop, over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from connector.cio.client import CustomerIOClient
from connector.cio.region import pin
from connector.config import Settings, load_settings
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Faults, Workspace
from connector.kafka import DEFAULT_MAX_REQUEST_SIZE, Headers, Partition, RebalanceCallback, Record
from connector.metrics import Metrics
from connector.sink.delivery import WorkspaceDelivery
from connector.sink.offsets import OffsetTracker
from connector.sink.retry import RetryPolicy
from connector.sink.routing import Router
from connector.sink.runner import Sink
from connector.sink.tickets import Ticket

MAX_POLL = 20
BOUND = 100  # CONNECTOR_MAX_BUFFERED_OPERATIONS (its minimum)


class MemoryConsumer:
    """A consumer-group member alone on in-memory partitions; ``on_fetch`` sees the sink before each fetch."""

    def __init__(self, logs: dict[Partition, list[Record]], on_fetch: Callable[[], None]) -> None:
        self._logs = logs
        self._positions = dict.fromkeys(logs, 0)
        self._paused: set[Partition] = set()
        self._on_fetch = on_fetch
        self._turn = 0
        self.committed_offsets: dict[Partition, int] = {}

    async def start(
        self,
        topics: Sequence[str],
        on_revoked: RebalanceCallback,
        on_assigned: RebalanceCallback,
        *,
        pattern: str | None = None,
    ) -> None:
        await on_assigned(list(self._logs))

    async def stop(self) -> None:
        pass

    async def fetch(self, timeout_ms: int, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records``, shared over the unpaused partitions; waits like a fetch when none is due."""
        self._on_fetch()
        ready = [p for p in self._logs if p not in self._paused and self._positions[p] < len(self._logs[p])]
        if not ready:
            await asyncio.sleep(timeout_ms / 1000)
            return []
        limit = max_records or MAX_POLL
        each = max(1, limit // len(ready))
        self._turn = (self._turn + 1) % len(ready)  # who goes first rotates, so every partition gets its turn
        records: list[Record] = []
        for partition in ready[self._turn :] + ready[: self._turn]:
            start = self._positions[partition]
            taken = self._logs[partition][start : start + min(each, limit - len(records))]
            self._positions[partition] = start + len(taken)
            records.extend(taken)
        return records

    async def commit(self, offsets: dict[Partition, int]) -> None:
        self.committed_offsets.update(offsets)

    async def end_offsets(self, partitions: Sequence[Partition]) -> dict[Partition, int]:
        return {p: len(self._logs[p]) for p in partitions}

    def assignment(self) -> set[Partition]:
        return set(self._logs)

    async def position(self, partition: Partition) -> int | None:
        return self._positions.get(partition)  # offsets are list indexes here

    def pause(self, partitions: Iterable[Partition]) -> None:
        self._paused.update(partitions)

    def resume(self, partitions: Iterable[Partition]) -> None:
        self._paused.difference_update(partitions)

    def all_committed(self, topics: Iterable[str]) -> bool:
        """Whether every record of ``topics`` is committed."""
        wanted = set(topics)
        return all(self.committed_offsets.get(p) == len(log) for p, log in self._logs.items() if p.topic in wanted)


class NoDeadLetters:
    """The dead-letter producer (a ``kafka.ProducerLike``): these tests produce no bad record, so any write
    fails the test."""

    started = True
    max_request_size = DEFAULT_MAX_REQUEST_SIZE

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        ack_timeout: float | None = None,
    ) -> None:
        raise AssertionError("unexpected dead letter")

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes | None, Headers]]) -> None:
        raise AssertionError(f"unexpected dead letters: {len(items)}")


def track_records(topic: str, partitions: int, count: int) -> dict[Partition, list[Record]]:
    """``count`` track events spread over the topic's partitions (one operation each)."""
    logs: dict[Partition, list[Record]] = {Partition(topic, p): [] for p in range(partitions)}
    now = int(time.time() * 1000)
    for i in range(count):
        partition = Partition(topic, i % partitions)
        log = logs[partition]
        message = {"type": "track", "userId": f"u{i % 37}", "event": "Visited", "messageId": f"{topic}-{i}"}
        log.append(Record(topic, partition.partition, len(log), now, None, orjson.dumps(message), ()))
    return logs


def settings_for(fake: FakeCustomerIO, names: list[str], tmp_path: Path, **overrides: str) -> Settings:
    """One workspace per name, each owning the topic ``t-<name>``; ``overrides`` are more settings."""
    config = tmp_path / "workspaces.yaml"
    config.write_text(
        "workspaces:\n"
        + "".join(f"  - {{name: {n}, site_id: site-{n}, api_key: key-{n}, topics: [t-{n}]}}\n" for n in names)
    )
    env = {
        "CONNECTOR_INPUT_TOPICS": ",".join(f"t-{n}" for n in names),
        "CIO_TRACK_URL_US": fake.us_url,
        "CIO_TRACK_URL_EU": fake.eu_url,
        "CONNECTOR_MAX_BUFFERED_OPERATIONS": str(BOUND),
        "CONNECTOR_MAX_POLL_RECORDS": str(MAX_POLL),
        "CONNECTOR_AUTH_REPROBE_SECONDS": "0.5",
        "CONNECTOR_COMMIT_INTERVAL_SECONDS": "0.1",
        "CONNECTOR_SHUTDOWN_TIMEOUT_SECONDS": "1",
        "CONNECTOR_RATE_LIMIT": "1000",
        **overrides,
    }
    return load_settings(env, str(config), role="sink")


@contextlib.asynccontextmanager
async def running_sink(
    settings: Settings, logs: dict[Partition, list[Record]], on_fetch: Callable[[Sink], None]
) -> AsyncIterator[tuple[Sink, MemoryConsumer]]:
    """The real Sink with real deliveries to the fake, consuming ``logs`` until the block ends."""
    metrics = Metrics(CollectorRegistry())
    offsets = OffsetTracker()

    def is_current(ticket: Ticket) -> bool:
        return offsets.is_current(ticket.partition, ticket.generation)

    async with CustomerIOClient(settings.sink.request_timeout_seconds, metrics) as client:
        deliveries = {
            ws.name: WorkspaceDelivery(
                pin(ws, settings.endpoints, "us"),
                client,
                settings.sink,
                RetryPolicy.from_settings(settings.sink),
                rate_per_second=settings.sink.rate_limit_per_second,
                max_in_flight=settings.sink.max_in_flight,
                metrics=metrics,
                is_current=is_current,
            )
            for ws in settings.workspaces
        }
        holder: list[Sink] = []
        consumer = MemoryConsumer(logs, lambda: on_fetch(holder[0]))
        sink = Sink(
            settings,
            offsets=offsets,
            consumer=consumer,
            producer=NoDeadLetters(),
            deliveries=deliveries,
            router=Router(settings),
            metrics=metrics,
        )
        holder.append(sink)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        try:
            yield sink, consumer
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_twenty_workspaces_share_one_bound(tmp_path: Path) -> None:
    """However many workspaces, the process buffers at most the bound (plus one fetch), and delivers all."""
    names = [f"ws{i}" for i in range(20)]
    # Slow answers let every workspace's buffer fill: the bound, not the fake's speed, limits them.
    faults = Faults(latency_ms=100)
    async with FakeCustomerIO([Workspace(n, f"site-{n}", f"key-{n}", "us") for n in names], faults=faults) as fake:
        settings = settings_for(fake, names, tmp_path)
        logs: dict[Partition, list[Record]] = {}
        for name in names:
            logs |= track_records(f"t-{name}", 2, 150)
        peak = 0

        def observe(sink: Sink) -> None:
            nonlocal peak
            peak = max(peak, sum(d.buffered for d in sink.deliveries.values()))

        async with running_sink(settings, logs, observe) as (_sink, consumer):
            await wait_for(lambda: consumer.all_committed(f"t-{n}" for n in names), "every record committed")
        assert all(len(fake.state.operations_for(n)) == 150 for n in names)
    assert 0 < peak <= BOUND + MAX_POLL, f"{peak} operations buffered at once"


async def test_a_stopped_workspace_holds_its_share_while_the_other_is_delivered(tmp_path: Path) -> None:
    """The fake revokes one workspace's key: it keeps at most half the bound; the other is delivered and committed."""
    async with FakeCustomerIO([Workspace(n, f"site-{n}", f"key-{n}", "us") for n in ("stopped", "live")]) as fake:
        fake.state.revoke("stopped")
        settings = settings_for(fake, ["stopped", "live"], tmp_path)
        logs = track_records("t-stopped", 2, 1_000) | track_records("t-live", 2, 1_000)
        held = 0

        def observe(sink: Sink) -> None:
            nonlocal held
            held = max(held, sink.deliveries["stopped"].buffered)

        async with running_sink(settings, logs, observe) as (sink, consumer):
            await wait_for(lambda: consumer.all_committed(["t-live"]), "the live workspace's records committed")
            await wait_for(lambda: not sink.deliveries["stopped"].ready, "the revoked key noticed")
            assert len(fake.state.operations_for("live")) == 1_000
            assert fake.state.operations_for("stopped") == []
            assert not any(p.topic == "t-stopped" for p in consumer.committed_offsets)
            still_held = sink.deliveries["stopped"].buffered
    assert 0 < still_held <= held <= BOUND // 2 + MAX_POLL, f"the stopped workspace held {held} operations"


@pytest.mark.parametrize("workspaces", [1, 3])
async def test_bytes_are_bounded_for_the_process(tmp_path: Path, workspaces: int) -> None:
    """Large operations: the serialized bytes buffered stay within CONNECTOR_MAX_BUFFERED_BYTES (plus a fetch)."""
    names = [f"ws{i}" for i in range(workspaces)]
    faults = Faults(latency_ms=100)
    async with FakeCustomerIO([Workspace(n, f"site-{n}", f"key-{n}", "us") for n in names], faults=faults) as fake:
        settings = settings_for(
            fake,
            names,
            tmp_path,
            CONNECTOR_MAX_BUFFERED_OPERATIONS="10000",
            CONNECTOR_MAX_BUFFERED_BYTES="1048576",
        )
        now = int(time.time() * 1000)
        padding = "x" * 20_000
        logs: dict[Partition, list[Record]] = {}
        for name in names:
            partition = Partition(f"t-{name}", 0)
            logs[partition] = [
                Record(
                    partition.topic,
                    0,
                    i,
                    now,
                    None,
                    orjson.dumps({"type": "track", "userId": f"u{i}", "event": "Big", "properties": {"p": padding}}),
                    (),
                )
                for i in range(300 // workspaces)
            ]
        peak = 0

        def observe(sink: Sink) -> None:
            nonlocal peak
            peak = max(peak, sum(d.buffered_bytes for d in sink.deliveries.values()))

        async with running_sink(settings, logs, observe) as (_sink, consumer):
            await wait_for(lambda: consumer.all_committed(f"t-{n}" for n in names), "every record committed")
    assert 0 < peak <= 1_048_576 + MAX_POLL * 21_000, f"{peak} bytes buffered at once"


async def test_delivered_records_are_not_kept_by_idle_lanes(tmp_path: Path) -> None:
    """Once everything is delivered and committed, the sink keeps none of it: no idle lane holds its last batch.

    Before, each lane's task kept the last batch it sent (operations, tickets, records) while it waited for the
    next: lanes × workspaces batches outside any bound, which grew the process past 1 GB with 50 workspaces.
    """
    names = [f"ws{i}" for i in range(5)]
    async with FakeCustomerIO([Workspace(n, f"site-{n}", f"key-{n}", "us") for n in names]) as fake:
        settings = settings_for(fake, names, tmp_path)
        logs: dict[Partition, list[Record]] = {}
        for name in names:
            logs |= track_records(f"t-{name}", 2, 200)
        async with running_sink(settings, logs, lambda _sink: None) as (sink, consumer):
            await wait_for(lambda: consumer.all_committed(f"t-{n}" for n in names), "every record committed")
            await wait_for(lambda: all(d.buffered == 0 for d in sink.deliveries.values()), "every operation resolved")
            gc.collect()
            kept = sum(1 for o in gc.get_objects() if isinstance(o, Ticket))
        assert all(len(fake.state.operations_for(n)) == 200 for n in names)
    assert kept == 0, f"{kept} tickets of delivered records still referenced"
