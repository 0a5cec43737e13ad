"""The sink's per-record CPU without Kafka or HTTP: ``.venv/bin/python bench/sink_path.py [--profile]``.

Feeds 200,000 sample records (the same mix as ``bench/sink_throughput.py``) through the real ``Sink``
in chunks of ``CONNECTOR_MAX_POLL_RECORDS`` — decode, route, map, ticket and offset bookkeeping, lanes and
batching — and completes every closed batch as if Customer.io answered 200 (building its request body),
so each record is resolved and its offset becomes committable. What is left out is aiokafka's fetch and
the HTTP round trip, which ``bench/sink_throughput.py`` measures end to end.

Each chunk looks like a real fetch: aiokafka's ``getmany`` (``Consumer.fetch``) returns each partition's
records together, in offset order, so a chunk holds one run of records per partition (the records are
spread over 4 partitions, and each chunk holds its quarter of each). Interleaving the partitions record by
record would make every record a partition run of its own in ``Sink._process``, which no fetch gives.

Prints records per CPU-second, best of a few runs; ``--profile`` prints the top of a cProfile instead;
``--compiled`` runs the mypyc-compiled modules built by ``scripts/build-compiled``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import sys
import time

import orjson
from compiled_tree import import_path  # bench/ is on sys.path when run as a script
from prometheus_client import CollectorRegistry

sys.path[:0] = import_path(compiled="--compiled" in sys.argv)  # before any connector import

from connector.cio.client import BatchResponse, CustomerIOClient  # noqa: E402
from connector.cio.region import pin  # noqa: E402
from connector.config import load_settings  # noqa: E402
from connector.devtools.samples import SampleEvents  # noqa: E402
from connector.kafka import Consumer, Producer, Record  # noqa: E402
from connector.metrics import Metrics  # noqa: E402
from connector.sink.delivery import WorkspaceDelivery  # noqa: E402
from connector.sink.offsets import OffsetTracker  # noqa: E402
from connector.sink.retry import RetryPolicy  # noqa: E402
from connector.sink.routing import Router  # noqa: E402
from connector.sink.runner import Sink  # noqa: E402
from connector.sink.tickets import Ticket  # noqa: E402

RECORDS = 200_000
PARTITIONS = 4
RUNS = 7
TOPIC = "events"


def sample_records(count: int, chunk: int = 2_000) -> list[Record]:
    """``count`` records over ``PARTITIONS`` partitions; each ``chunk`` of them grouped by partition, like a fetch."""
    samples = SampleEvents(seed=42, users=20_000)
    now = int(time.time() * 1000)
    records = []
    for i in range(count):
        message = samples.message(now - (count - i))
        partition = i % PARTITIONS
        key = str(message["userId"]).encode()
        records.append(Record(TOPIC, partition, i // PARTITIONS, now, key, orjson.dumps(message), ()))
    # Stable: within a chunk each partition's records keep their offset order.
    return [r for start in range(0, count, chunk) for r in sorted(records[start : start + chunk], key=_partition)]


def _partition(record: Record) -> int:
    return record.partition


def build_sink(metrics: Metrics) -> tuple[Sink, WorkspaceDelivery]:
    settings = load_settings(
        {
            "CONNECTOR_INPUT_TOPICS": TOPIC,
            "CIO_SITE_ID": "site",
            "CIO_API_KEY": "key",
            "CIO_REGION": "us",
            "CONNECTOR_MAX_BUFFERED_OPERATIONS": str(RECORDS * 4),  # never congested: no pauses here
        }
    )
    offsets = OffsetTracker()
    workspace = pin(settings.workspaces[0], settings.endpoints, "us")
    client = CustomerIOClient(
        settings.sink.request_timeout_seconds, metrics
    )  # never called: batches are completed below

    def is_current(ticket: Ticket) -> bool:
        return offsets.is_current(ticket.partition, ticket.generation)

    delivery = WorkspaceDelivery(
        workspace,
        client,
        settings.sink,
        RetryPolicy.from_settings(settings.sink),
        rate_per_second=1000.0,
        max_in_flight=16,
        metrics=metrics,
        is_current=is_current,
    )
    sink = Sink(
        settings,
        offsets=offsets,
        consumer=Consumer(settings.kafka, settings.sink.group_id),  # never started
        producer=Producer(settings.kafka),  # never started
        deliveries={workspace.name: delivery},
        router=Router(settings),
        metrics=metrics,
    )
    return sink, delivery


def run_once(records: list[Record], chunk: int) -> float:
    """CPU seconds to process and complete every record."""
    sink, delivery = build_sink(Metrics(CollectorRegistry()))
    accepted = BatchResponse(200)
    started = time.process_time()
    for start in range(0, len(records), chunk):
        sink._process(records[start : start + chunk])
        if start + chunk >= len(records):
            delivery.flush()
        for lane in delivery._lanes:
            while lane.ready:
                batch, _ = lane.ready.popleft()
                batch.body()
                delivery._on_accepted(batch, accepted)
        sink._publish_counts()
    elapsed = time.process_time() - started
    unresolved = sink._offsets.in_flight()
    if unresolved:
        raise SystemExit(f"{unresolved} records were left unresolved")
    return elapsed


async def main(profile: bool) -> None:
    chunk = load_settings({}).sink.max_poll_records
    records = sample_records(RECORDS, chunk)
    gc.collect()
    gc.freeze()  # the 200,000 input records are fixtures: keep them out of the collections measured
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_once(records, chunk)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    best = min(run_once(records, chunk) for _ in range(RUNS))
    compiled = not sys.modules["connector.sink.mapping.mapper"].__file__.endswith(".py")  # type: ignore[union-attr]
    print(f"mapping layer: {'compiled with mypyc (build/compiled)' if compiled else 'pure Python'}")
    print(f"sink in-process path (decode → map → batch → resolve): {RECORDS / best:>10,.0f} records per CPU-second")
    print(f"                                                     : {best / RECORDS * 1e6:>10.2f} µs per record")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run instead")
    parser.add_argument("--compiled", action="store_true", help="use the modules built by scripts/build-compiled")
    asyncio.run(main(parser.parse_args().profile))
