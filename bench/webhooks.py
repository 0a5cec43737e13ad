"""Signed reporting webhooks per second, end to end (HTTP → verify → normalize → Kafka ack, acks=all).

    .venv/bin/python bench/webhooks.py [--count 60000] [--seconds 20] [--connections 64]
                                       [--generators 1] [--client aiohttp|raw]
                                       [--rate 1000] [--rate-seconds 10]

Runs, against a real broker (``KAFKA_BOOTSTRAP_SERVERS``, else one started by
``connector.devtools.kafka_local.provide_broker()``), on loopback only:

1. ceiling: a plain aiohttp server that answers 200 to every POST, same generator, same bodies;
2. the listener with an in-memory producer that acknowledges at once (HTTP + verify + normalize);
3. throughput: the webhook listener with the connector's idempotent producer (acks=all);
4. latency: the listener at a fixed arrival rate (open loop: latency is measured from each request's
   scheduled send time, so a stall is not hidden by the generator waiting for it).

Every request carries a unique ``event_id`` (no dedup shortcut) and a valid signature. After the run the
topic's end offsets are compared with the number of 200 answers: each 2xx must be a record in Kafka.

The load generator runs in separate processes (``multiprocessing``, spawn): a Python aiohttp client
costs about as much CPU per request as the server, so in the server's process it would halve the
measured rate. Even in its own process it competes with the listener and the broker for the cores,
so ``--client raw`` offers a minimal keep-alive HTTP/1.1 client (pre-built request bytes, status line
and Content-Length parsing only) that leaves more CPU to the server. Bodies are built and signed
before the clock starts. The bounds (``--count`` and ``--seconds``) apply to each phase.

Also printed: the listener process's CPU time per answered request (user + system, including the
Kafka producer), the figure least disturbed by whatever else runs on the machine. On a 2-core machine
the broker's JVM, the generator and the listener share the cores, so the rates are a floor for a
deployment where they do not.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import math
import multiprocessing as mp
import os
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import yarl
from aiohttp import web
from prometheus_client import CollectorRegistry

from connector.config import KafkaSettings, Secret, WebhookSettings
from connector.devtools.kafka_local import provide_broker
from connector.errors import BrokerUnavailableError
from connector.kafka import Consumer, Partition, Producer, Record3, ensure_topics
from connector.metrics import Metrics
from connector.webhook.listener import WebhookListener, tune_gc_for_webhooks
from connector.webhook.signature import sign

KEY = "bench-signing-key"
PATH = "/webhooks/customerio"
HOST = "127.0.0.1"


# --- load generator (runs in child processes) ----------------------------------------------------------


def build_requests(prefix: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    """``count`` signed email-delivered webhooks with unique event ids (a realistic ~600-byte body)."""
    requests = []
    ts = str(int(time.time()))
    for i in range(count):
        body = orjson.dumps(
            {
                "event_id": f"{prefix}-{i:08d}",
                "object_type": "email",
                "metric": "delivered" if i % 3 else "opened",
                "timestamp": int(ts),
                "data": {
                    "campaign_id": 12,
                    "action_id": 87,
                    "journey_id": "01JGD8ZZ0Y1X2W3V4T5S6R7Q8P",
                    "trigger_event_id": "01JGD8ZYAB12CD34EF56GH78JK",
                    "delivery_id": f"dgOg4AUBAAAAAAGRn9bX3Lq0{i:08d}",
                    "customer_id": f"user-{i % 5000}",
                    "identifiers": {"id": f"user-{i % 5000}", "email": f"u{i % 5000}@example.com", "cio_id": "a10b01"},
                    "recipient": f"u{i % 5000}@example.com",
                    "subject": "Your order has shipped",
                },
            }
        )
        headers = {
            "X-CIO-Timestamp": ts,
            "X-CIO-Signature": sign(KEY, ts, body),
            "Content-Type": "application/json",
        }
        requests.append((body, headers))
    return requests


@dataclass
class LoadResult:
    """What one generator process measured (monotonic clock, shared by processes on Linux)."""

    started: float = 0.0
    finished: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


class AiohttpPoster:
    """POSTs through one aiohttp session with at most ``connections`` keep-alive connections."""

    def __init__(self, url: str, connections: int) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        """Send one request; its status."""
        async with self.session.post(self.url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def close(self) -> None:
        """Close the session."""
        await self.session.close()


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a pre-built request, read one response."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        length, at = 0, head.find(b"content-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at)
            length = int(head[at + 15 : stop if stop > 0 else len(head)])
        if len(self.buffer) >= end + 4 + length:
            del self.buffer[: end + 4 + length]
            waiter, self.waiter = self.waiter, None
            waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - asyncio.Protocol method
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))


class RawPoster:
    """POSTs pre-built HTTP/1.1 requests over ``connections`` keep-alive sockets: a much cheaper client.

    A Python aiohttp client spends about as much CPU per request as the server; on a 2-core machine that
    CPU is taken from the server and the broker. This client only writes bytes and reads a status line.
    """

    def __init__(self, url: str, connections: int) -> None:
        parsed = yarl.URL(url)
        self.host, self.port, self.path = parsed.host or HOST, parsed.port or 80, parsed.raw_path
        self.connections = connections
        self.idle: asyncio.Queue[_RawConnection] = asyncio.Queue()
        self.opened: list[_RawConnection] = []

    def encode(self, body: bytes, headers: dict[str, str]) -> bytes:
        """The request bytes."""
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def post(self, body: bytes | bytearray, headers: dict[str, str] | None = None) -> int:
        """Send one request (pre-encoded when ``headers`` is None); its status."""
        data = bytes(body) if headers is None else self.encode(bytes(body), headers)
        if self.idle.empty() and len(self.opened) < self.connections:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(_RawConnection, self.host, self.port)
            self.opened.append(connection)
        else:
            connection = await self.idle.get()
        try:
            connection.waiter = asyncio.get_running_loop().create_future()
            assert connection.transport is not None
            connection.transport.write(data)
            return await connection.waiter
        finally:
            self.idle.put_nowait(connection)

    async def close(self) -> None:
        """Close every connection."""
        for connection in self.opened:
            if connection.transport is not None:
                connection.transport.close()


Poster = AiohttpPoster | RawPoster


def make_poster(client: str, url: str, connections: int) -> Poster:
    """The load generator's HTTP client."""
    return RawPoster(url, connections) if client == "raw" else AiohttpPoster(url, connections)


async def closed_loop(poster: Poster, requests: list[Any], connections: int, seconds: float) -> LoadResult:
    """``connections`` workers, each posting the next request as soon as its previous one is answered."""
    result = LoadResult()
    position = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal position
        while position < len(requests) and time.monotonic() < deadline:
            request = requests[position]
            position += 1
            try:
                result.statuses[await poster.post(*request)] += 1
            except (aiohttp.ClientError, OSError):
                result.errors += 1

    result.started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.finished = time.monotonic()
    await poster.close()
    return result


async def open_loop(poster: Poster, requests: list[Any], rate: float) -> LoadResult:
    """One request every ``1/rate`` s whatever the answers; latency counted from the scheduled send time."""
    result = LoadResult()

    async def one(request: Any, scheduled: float) -> None:
        try:
            result.statuses[await poster.post(*request)] += 1
        except (aiohttp.ClientError, OSError):
            result.errors += 1
            return
        result.latencies.append(time.monotonic() - scheduled)

    tasks = []
    result.started = time.monotonic()
    for i, request in enumerate(requests):
        scheduled = result.started + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, scheduled)))
    await asyncio.gather(*tasks)
    result.finished = time.monotonic()
    await poster.close()
    return result


@dataclass(frozen=True)
class LoadPlan:
    """What one generator process does (pickled to it)."""

    url: str
    prefix: str
    count: int
    connections: int
    seconds: float
    rate: float | None
    client: str


def generator_process(conn: Any, plan: LoadPlan) -> None:
    """Child process: build and sign the requests, wait for the go, run, send back the result."""
    requests: list[Any] = build_requests(plan.prefix, plan.count)
    if plan.client == "raw":
        encoder = RawPoster(plan.url, 1)
        requests = [(encoder.encode(body, headers),) for body, headers in requests]
    conn.send("ready")
    conn.recv()

    async def run() -> LoadResult:
        poster = make_poster(plan.client, plan.url, plan.connections)
        if plan.rate is None:
            return await closed_loop(poster, requests, plan.connections, plan.seconds)
        return await open_loop(poster, requests, plan.rate)

    conn.send(asyncio.run(run()))
    conn.close()


def _receive(pipe: Any, process: Any) -> Any:
    """The child's next message; RuntimeError if it died instead of sending one."""
    while not pipe.poll(0.5):
        if not process.is_alive():
            raise RuntimeError(f"load generator process exited with code {process.exitcode}")
    return pipe.recv()


def run_load(
    url: str,
    *,
    count: int,
    connections: int,
    seconds: float,
    generators: int,
    rate: float | None = None,
    client: str = "aiohttp",
) -> LoadResult:
    """Run ``generators`` processes sharing ``count``, ``connections`` and ``rate``; merge their results."""
    ctx = mp.get_context("spawn")
    prefix = uuid.uuid4().hex[:10]
    pipes, processes = [], []
    for g in range(generators):
        parent, child = ctx.Pipe()
        plan = LoadPlan(
            url=url,
            prefix=f"{prefix}-{g}",
            count=count // generators,
            connections=max(1, connections // generators),
            seconds=seconds,
            rate=None if rate is None else rate / generators,
            client=client,
        )
        process = ctx.Process(target=generator_process, args=(child, plan), daemon=True)
        process.start()
        pipes.append(parent)
        processes.append(process)
    try:
        for pipe, process in zip(pipes, processes, strict=True):
            assert _receive(pipe, process) == "ready"
        for pipe in pipes:
            pipe.send("go")
        results: list[LoadResult] = [_receive(pipe, process) for pipe, process in zip(pipes, processes, strict=True)]
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    merged = LoadResult(
        started=min(r.started for r in results),
        finished=max(r.finished for r in results),
        errors=sum(r.errors for r in results),
    )
    for r in results:
        merged.statuses.update(r.statuses)
        merged.latencies.extend(r.latencies)
    return merged


# --- servers (this process) ---------------------------------------------------------------------------


async def serve_plain() -> tuple[web.AppRunner, int]:
    """The ceiling: aiohttp answering 200 with a small JSON body to every POST, nothing else."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"message": "accepted"})

    app = web.Application()
    app.router.add_post(PATH, ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def load(url: str, args: argparse.Namespace, count: int, seconds: float, rate: float | None = None) -> LoadResult:
    """Run the generator processes, waiting for them without blocking the server's event loop."""
    return await asyncio.to_thread(
        functools.partial(
            run_load,
            url,
            count=count,
            connections=args.connections,
            seconds=seconds,
            generators=args.generators,
            rate=rate,
            client=args.client,
        )
    )


def process_cpu() -> float:
    """User + system CPU seconds of this process (the servers and the producer; not the generators)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_request(cpu_seconds: float, result: LoadResult) -> float:
    """CPU microseconds per answered request."""
    return cpu_seconds * 1e6 / max(1, sum(result.statuses.values()))


def rate_of(result: LoadResult) -> float:
    """Answers with status 200 per second."""
    return result.statuses[200] / max(result.finished - result.started, 1e-9)


def describe(result: LoadResult) -> str:
    """Statuses, errors and the request rate in one line."""
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(result.statuses.items()))
    return (
        f"{rate_of(result):,.0f}/s over {result.finished - result.started:.1f} s ({statuses}; errors {result.errors})"
    )


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted ``ordered`` (nearest rank)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


class InstantProducer:
    """Acknowledges every record at once (isolates the listener's own cost from Kafka's)."""

    started = True

    async def send_batch(
        self,
        topic: str,  # noqa: ARG002 - the protocol's signature
        records: Sequence[Record3],
    ) -> list[BrokerUnavailableError | None]:
        """Accept the records."""
        return [None] * len(records)


async def _noop(_partitions: list[Partition]) -> None:
    return None


async def records_in(settings: KafkaSettings, topic: str, partitions: int) -> int:
    """Total records in ``topic`` (sum of end offsets)."""
    consumer = Consumer(settings, f"bench-{uuid.uuid4().hex[:8]}")
    await consumer.start([topic], _noop, _noop)
    try:
        ends = await consumer.end_offsets([Partition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return sum(ends.values())


async def bench(bootstrap: str, args: argparse.Namespace) -> int:
    """All three phases; print the figures; non-zero if a 2xx is missing from Kafka."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap)

    runner, port = await serve_plain()
    url = f"http://{HOST}:{port}{PATH}"
    await load(url, args, 2000, 5.0)  # warm-up
    cpu = process_cpu()
    ceiling = await load(url, args, args.count, args.seconds)
    ceiling_cpu = per_request(process_cpu() - cpu, ceiling)
    await runner.cleanup()
    print(f"ceiling   plain aiohttp 200:       {describe(ceiling)}; server CPU {ceiling_cpu:.0f} µs/request")

    # As `cio-connector webhooks` runs (the ceiling above keeps Python's defaults, as plain aiohttp would).
    tune_gc_for_webhooks()
    # The listener with a producer that acknowledges at once: HTTP + verify + normalize, no Kafka.
    settings = WebhookSettings(host=HOST, port=0, signing_keys=(Secret(KEY),))
    listener = WebhookListener(settings, InstantProducer(), Metrics(CollectorRegistry()))
    await listener.start()
    url = f"http://{HOST}:{listener.port}{PATH}"
    await load(url, args, 2000, 5.0)
    cpu = process_cpu()
    no_kafka = await load(url, args, args.count, args.seconds)
    no_kafka_cpu = per_request(process_cpu() - cpu, no_kafka)
    await listener.stop()
    print(f"listener  in-memory producer:      {describe(no_kafka)}; server CPU {no_kafka_cpu:.0f} µs/request")

    topic = f"bench-webhooks-{uuid.uuid4().hex[:8]}"
    partitions = 3
    await ensure_topics(kafka, {topic: partitions})
    producer = Producer(kafka)
    await producer.start()
    settings = WebhookSettings(host=HOST, port=0, topic=topic, signing_keys=(Secret(KEY),), produce_timeout_seconds=3.0)
    listener = WebhookListener(settings, producer, Metrics(CollectorRegistry()))
    await listener.start()
    url = f"http://{HOST}:{listener.port}{PATH}"
    try:
        warm = await load(url, args, 10_000, 10.0)  # warms the broker's JIT too, when it was just started
        cpu = process_cpu()
        full = await load(url, args, args.count, args.seconds)
        full_cpu = per_request(process_cpu() - cpu, full)
        print(f"webhooks  verify+normalize+acks=all: {describe(full)}; server CPU {full_cpu:.0f} µs/request")
        print(f"ratio     webhooks / ceiling:      {rate_of(full) / max(rate_of(ceiling), 1e-9):.0%}")

        rate_count = int(args.rate * args.rate_seconds)
        paced = await load(url, args, rate_count, args.rate_seconds * 3, args.rate)
        latencies = sorted(paced.latencies)
        print(
            f"latency   at {args.rate:,.0f}/s for {args.rate_seconds:g} s: "
            f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms, "
            f"max {latencies[-1] * 1000 if latencies else float('nan'):.1f} ms ({describe(paced)})"
        )
    finally:
        await listener.stop()
        await producer.stop()

    stored = await records_in(kafka, topic, partitions)
    answered = warm.statuses[200] + full.statuses[200] + paced.statuses[200]
    print(f"check     2xx answers {answered:,}, records in Kafka {stored:,}")
    return 0 if stored >= answered else 1


def main() -> int:
    """Parse arguments, get a broker, run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60_000, help="requests per throughput phase (upper bound)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound of each throughput phase")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (all generators)")
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument(
        "--client", choices=["aiohttp", "raw"], default="aiohttp", help="load generator HTTP client (see RawPoster)"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="arrival rate of the latency phase (req/s)")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="duration of the latency phase")
    args = parser.parse_args()
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    print(
        f"broker    {configured or 'started by provide_broker()'}; {os.cpu_count()} CPUs; loopback only; "
        f"client {args.client} x{args.generators}, {args.connections} connections; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # reconnect chatter of the offsets check
    with provide_broker() as bootstrap:
        return asyncio.run(bench(bootstrap, args))


if __name__ == "__main__":
    sys.exit(main())
