"""Sink latency: p50/p99 end-to-end delay at a steady produce rate, from the connector's own histogram.

Issue #17 target 5: at a steady 10,000 events/s, the p99 of ``connector_end_to_end_delay_seconds`` (Kafka
record timestamp → Customer.io's 2xx) is below 500 ms.

In one run: the fake Customer.io and ONE connector with default settings (bench/sink_throughput.py's
helpers; ``CONNECTOR_START_FROM=earliest`` so nothing produced before the group joins is skipped), then a
paced aiokafka producer sending sample events (bench/sink_throughput.py's ``SampleEvents``, keyed by user,
over several partitions) at a steady rate. The record timestamp is the producer's (CreateTime, set when
``send`` is called), so the delay includes the producer's own linger, the broker, the connector's fetch,
mapping, batching (``CONNECTOR_LINGER_SECONDS``) and the HTTP round trip. The connector's /metrics is
scraped at the end of the warm-up and at the end of the measured window; the quantiles are Prometheus'
``histogram_quantile`` over the bucket deltas between the two, so start-up and warm-up are excluded.

What the histogram measures: ``WorkspaceDelivery._on_accepted`` observes it ONCE PER ACCEPTED BATCH, for
the batch's first (oldest) record. Each observation is therefore the longest wait in its batch, and the
quantiles are over batches, not records: p99 is "99% of batches had their oldest record accepted within".
The script also prints records per observation (the average batch, in records) to make that visible.

    .venv/bin/python bench/sink_latency.py                      # 10,000 events/s, 10 s warm-up, 60 s measured
    .venv/bin/python bench/sink_latency.py --rate 20000 --seconds 30 --set CONNECTOR_LINGER_SECONDS=0.1

The broker comes from KAFKA_BOOTSTRAP_SERVERS, else it is started (connector.devtools.kafka_local).
Everything shares this machine's cores: the achieved produce rate is printed, and flagged when the producer
fell behind its schedule (then the figures are not at the requested rate).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import time
import typing
import uuid
from dataclasses import dataclass

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer
from sink_throughput import (  # bench/ is on sys.path when run as a script
    CLI,
    CpuShares,
    broker_pid,
    connector_env,
    exit_if_dead,
    free_port,
    start_connector,
    start_fake,
    wait_answering,
)

from connector.config import KafkaSettings
from connector.devtools.kafka_local import provide_broker
from connector.devtools.samples import SampleEvents
from connector.kafka import ensure_topics

DELAY = "connector_end_to_end_delay_seconds"
TICK_SECONDS = 0.005  # the producer tops up to its schedule this often
POOL = 20_000  # distinct pre-serialized events, cycled (generating them would cost the producer's CPU)


@dataclass(frozen=True)
class Scrape:
    """What one /metrics scrape says about delivery: the delay histogram (summed over workspaces) and counts."""

    at: float
    buckets: dict[float, float]  # upper bound (le) → cumulative count, +Inf included
    observations: float
    delivered_records: float
    assigned: float

    def minus(self, earlier: Scrape) -> dict[float, float]:
        """The cumulative buckets of what was observed between ``earlier`` and this scrape."""
        return {le: count - earlier.buckets.get(le, 0.0) for le, count in self.buckets.items()}


def parse_scrape(text: str, at: float) -> Scrape:
    """Sum the delay histogram over its workspace label; read the delivered-records counter and assignment."""
    buckets: dict[float, float] = {}
    observations = delivered = assigned = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name_labels, value_text = line.rsplit(" ", 1)
        value = float(value_text)
        name = name_labels.split("{", 1)[0]
        if name == f"{DELAY}_bucket":
            le = name_labels.split('le="', 1)[1].split('"', 1)[0]
            bound = math.inf if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + value
        elif name == f"{DELAY}_count":
            observations += value
        elif name == "connector_records_completed_total" and 'outcome="delivered"' in name_labels:
            delivered += value
        elif name == "connector_partitions_assigned":
            assigned += value
    return Scrape(at, buckets, observations, delivered, assigned)


def histogram_quantile(q: float, cumulative: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding rank q × total.

    The first bucket's lower bound is 0; a rank in the +Inf bucket answers the largest finite bound.
    """
    bounds = sorted(cumulative)
    total = cumulative[math.inf]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = cumulative[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


def share_above(bound: float, cumulative: dict[float, float]) -> float:
    """Fraction of observations above ``bound`` (a bucket edge): exact, no interpolation."""
    total = cumulative[math.inf]
    return (total - cumulative[bound]) / total if total else math.nan


async def scrape(http: aiohttp.ClientSession, url: str) -> Scrape:
    async with http.get(url) as response:
        return parse_scrape(await response.text(), time.perf_counter())


def event_pool(count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``count`` sample events, as sink_throughput produces them (keyed by user)."""
    samples = SampleEvents(seed=42, users=20_000)
    now = int(time.time() * 1000)
    pool = []
    for _ in range(count):
        message = samples.message(now)
        pool.append((str(message["userId"]).encode(), orjson.dumps(message)))
    return pool


class PacedProducer:
    """Sends ``rate`` records/s from the pool, topping up to the schedule every tick; counts what it sent."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, rate: float, pool: list[tuple[bytes, bytes]]) -> None:
        self._producer, self._topic, self._rate, self._pool = producer, topic, rate, pool
        self.sent = 0
        self.worst_behind = 0  # most records the producer was behind its schedule at a tick
        self._pending: list[asyncio.Future[typing.Any]] = []

    async def run(self, stop: asyncio.Event) -> None:
        started = time.perf_counter()
        pool, size = self._pool, len(self._pool)
        while not stop.is_set():
            due = int((time.perf_counter() - started) * self._rate)
            behind = due - self.sent
            self.worst_behind = max(self.worst_behind, behind)
            for _ in range(behind):
                key, value = pool[self.sent % size]
                # No timestamp given: aiokafka stamps the record now (CreateTime), the delay's start.
                self._pending.append(await self._producer.send(self._topic, value, key=key))
                self.sent += 1
            if len(self._pending) > 5_000:  # surface send errors, keep the list short
                done = [f for f in self._pending if f.done()]
                for future in done:
                    future.result()
                self._pending = [f for f in self._pending if not f.done()]
            await asyncio.sleep(TICK_SECONDS)
        await asyncio.gather(*self._pending)


async def watch_until(
    deadline: float, connector: subprocess.Popen[bytes], errors: typing.IO[bytes], producing: asyncio.Task[None]
) -> None:
    """Wait until ``deadline`` (perf_counter), ending the benchmark if the connector or the producer fails."""
    while time.perf_counter() < deadline:
        exit_if_dead(connector, errors)
        if producing.done():
            producing.result()  # a send error ends the benchmark
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.perf_counter())))


async def run(args: argparse.Namespace, bootstrap: str, extra_env: dict[str, str]) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, {topic: args.partitions})
    us, eu, metrics_port = free_port(), free_port(), free_port()
    env = connector_env(bootstrap, [topic], us, eu, compiled=args.compiled, extra_env=extra_env)
    pool = event_pool(POOL)
    fake = start_fake(env, us, eu)
    connector: subprocess.Popen[bytes] | None = None
    errors: typing.IO[bytes] | None = None
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_answering(http, f"http://127.0.0.1:{us}/_fake/stats")
            connector, errors = start_connector([*CLI, "sink"], env, metrics_port)
            await wait_answering(http, metrics_url)
            while (await scrape(http, metrics_url)).assigned < args.partitions:  # joined the group
                exit_if_dead(connector, errors)
                await asyncio.sleep(0.2)
            broker = broker_pid(bootstrap)
            shares = CpuShares(
                {
                    "connector": [connector.pid],
                    "fake": [fake.pid],
                    "broker": [broker] if broker else [],
                    "producer": [os.getpid()],  # this benchmark
                }
            )
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=args.producer_linger_ms)
            await producer.start()
            paced = PacedProducer(producer, topic, args.rate, pool)
            stop = asyncio.Event()
            producing = asyncio.create_task(paced.run(stop))
            try:
                print(
                    f"producing {args.rate:,.0f} events/s to {topic} ({args.partitions} partitions): "
                    f"{args.warmup:.0f} s warm-up, then {args.seconds:.0f} s measured…",
                    flush=True,
                )
                await asyncio.sleep(args.warmup)
                first, sent_first = await scrape(http, metrics_url), paced.sent
                shares.start()
                paced.worst_behind = 0
                await watch_until(first.at + args.seconds, connector, errors, producing)
                last, sent_last = await scrape(http, metrics_url), paced.sent
                cpu = shares.report()
            finally:
                stop.set()
                await producing
                await producer.stop()
    finally:
        for child in (connector, fake):
            if child is not None and child.poll() is None:
                child.terminate()
                child.wait(30)
        if errors is not None:
            errors.close()
    report(args, first, last, sent=sent_last - sent_first, worst_behind=paced.worst_behind, cpu=cpu)


def report(
    args: argparse.Namespace,
    first: Scrape,
    last: Scrape,
    *,
    sent: int,
    worst_behind: int,
    cpu: str,
) -> None:
    window = last.at - first.at
    produced = sent / window
    delivered = (last.delivered_records - first.delivered_records) / window
    buckets = last.minus(first)
    observations = last.observations - first.observations
    lag = "" if produced >= 0.98 * args.rate else "   ← BELOW the requested rate: the producer lagged"
    print(f"window      {window:.1f} s after a {args.warmup:.0f} s warm-up")
    print(f"produced    {produced:>10,.0f} events/s  (requested {args.rate:,.0f}; worst {worst_behind:,} behind){lag}")
    print(f"delivered   {delivered:>10,.0f} events/s  (records completed as delivered, by the connector)")
    per_batch = (last.delivered_records - first.delivered_records) / observations if observations else math.nan
    print(f"observed    {observations:>10,.0f} batches   ({per_batch:,.0f} records per observation: one per batch)")
    print(f"CPU         {cpu}   (producer: this benchmark)")
    p50, p99 = histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets)
    verdict = "met" if p99 < 0.5 else "NOT met"
    print(f"delay p50   {p50 * 1000:>10,.0f} ms")
    print(f"delay p99   {p99 * 1000:>10,.0f} ms   (target < 500 ms: {verdict})")
    edges = [b for b in sorted(buckets) if not math.isinf(b) and b <= 2.5]
    print("share above " + "  ".join(f"{b * 1000:.0f} ms: {share_above(b, buckets):.2%}" for b in edges))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=10_000, help="events per second produced (default 10,000)")
    parser.add_argument("--seconds", type=float, default=60, help="measured window (default 60)")
    parser.add_argument("--warmup", type=float, default=10, help="produced but not measured first (default 10)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the input topic (default 4)")
    parser.add_argument("--producer-linger-ms", type=int, default=5, help="the paced producer's linger (default 5)")
    parser.add_argument(
        "--compiled", action="store_true", help="run the connector with the modules built by scripts/build-compiled"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="extra connector setting (repeatable)"
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    with provide_broker() as servers:
        asyncio.run(run(args, servers, extra))


if __name__ == "__main__":
    sys.exit(main())
