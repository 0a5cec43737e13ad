"""`make demo`: the whole product on one machine, end to end, then a report of what arrived.

1. a real Kafka broker (KAFKA_BOOTSTRAP_SERVERS, Docker, or the pinned jars run with Java);
2. the fake Customer.io (`cio-connector fake-cio`, US and EU hosts);
3. the connector (`cio-connector run`: sink + webhook listener) as its own process;
4. sample Segment events into the input topic and signed reporting webhooks into the listener;
5. prints what reached the fake Customer.io, the dead-letter topic and the webhook output topic;
6. stops everything (the connector by SIGTERM, so its graceful shutdown is shown too) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson

from connector.config import load_settings
from connector.devtools.demo_producer import produce_forever
from connector.devtools.kafka_local import provide_broker
from connector.kafka import Consumer, Partition, ensure_topics

ROOT = Path(__file__).resolve().parent.parent
INPUT_TOPIC = "demo-segment-events"
DLQ_TOPIC = "demo-dlq"
WEBHOOK_TOPIC = "demo-cio-reporting-events"
SIGNING_KEY = "demo-signing-key"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def say(text: str) -> None:
    """A demo progress line."""
    print(f"==> {text}", flush=True)


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a child process with its output in ``log_path``; SIGTERM it (then wait) on exit."""
    with log_path.open("wb") as log:
        child = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield child
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()


async def wait_http(url: str, timeout: float, status: int = 200) -> None:
    """Poll ``url`` until it answers ``status``."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(url) as response:
                    if response.status == status:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: {url} did not answer {status} within {timeout}s")
            await asyncio.sleep(0.3)


async def read_topic(settings_env: dict[str, str], topic: str, expect: int, timeout: float) -> list[dict[str, object]]:
    """Records of ``topic`` (value decoded, headers as text) until ``expect`` arrived or ``timeout``."""
    settings = load_settings(settings_env)
    consumer = Consumer(settings.kafka, f"demo-reader-{time.time_ns()}")

    async def noop(_p: list[Partition]) -> None:
        return None

    out: list[dict[str, object]] = []
    await consumer.start([topic], noop, noop)
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for record in await consumer.fetch(500):
                try:
                    value: object = orjson.loads(record.value or b"")
                except orjson.JSONDecodeError:
                    value = (record.value or b"").decode("utf-8", "replace")
                out.append({"value": value, "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers}})
    finally:
        await consumer.stop()
    return out


async def demo(events: int, bootstrap: str, workdir: Path) -> int:
    us_port, eu_port, hook_port, metrics_port = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CONNECTOR_INPUT_TOPICS": INPUT_TOPIC,
        "CONNECTOR_GROUP_ID": "demo-connector",
        # The demo's topic is new and holds only its own traffic: read it whole, whatever joins first.
        "CONNECTOR_START_FROM": "earliest",
        "CONNECTOR_DLQ_TOPIC": DLQ_TOPIC,
        "CONNECTOR_WEBHOOK_TOPIC": WEBHOOK_TOPIC,
        "CIO_SITE_ID": "demo-site",
        "CIO_API_KEY": "demo-key",
        "CIO_APP_API_KEY": "demo-app-key",
        "CIO_REGION": "auto",
        "CIO_TRACK_URL_US": f"http://127.0.0.1:{us_port}",
        "CIO_TRACK_URL_EU": f"http://127.0.0.1:{eu_port}",
        "CIO_APP_URL_US": f"http://127.0.0.1:{us_port}",
        "CIO_APP_URL_EU": f"http://127.0.0.1:{eu_port}",
        "CIO_WEBHOOK_SIGNING_KEYS": SIGNING_KEY,
        "CONNECTOR_WEBHOOK_PORT": str(hook_port),
        "CONNECTOR_METRICS_PORT": str(metrics_port),
        "CONNECTOR_LINGER_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    settings = load_settings(env)
    await ensure_topics(settings.kafka, {INPUT_TOPIC: 3, DLQ_TOPIC: 1, WEBHOOK_TOPIC: 1})
    cli = [sys.executable, "-m", "connector"]
    fake_argv = [*cli, "fake-cio", "--us-port", str(us_port), "--eu-port", str(eu_port)]
    say(f"fake Customer.io on :{us_port} (US) and :{eu_port} (EU); logs in {workdir}/fake-cio.log")
    with process(fake_argv, env, workdir / "fake-cio.log"):
        await wait_http(f"http://127.0.0.1:{us_port}/_fake/stats", 30)
        say(f"connector `run` (sink + webhooks): webhooks on :{hook_port}, metrics on :{metrics_port}")
        with process([*cli, "run"], env, workdir / "connector.log") as connector:
            await wait_http(f"http://127.0.0.1:{metrics_port}/readyz", 60)
            say(f"sending {events} Segment events to '{INPUT_TOPIC}' and signed webhooks to the listener")
            args = argparse.Namespace(rate=float(events) * 2, webhook_url=f"http://127.0.0.1:{hook_port}", count=events)
            await produce_forever(load_settings(env), args, asyncio.Event())
            bad = events // 200
            expected_ops = events - bad
            say("waiting for Customer.io (the fake) to receive them")
            operations = await _wait_for_operations(us_port, expected_ops, timeout=60)
            connector.send_signal(signal.SIGTERM)
            code = connector.wait(timeout=40)
            say(f"connector stopped on SIGTERM with exit code {code}")
    dead = await read_topic(env, DLQ_TOPIC, bad, timeout=10)
    hooks = await read_topic(env, WEBHOOK_TOPIC, max(1, events // 10), timeout=10)
    _report(operations, dead, hooks)
    return 0 if code == 0 and len(operations) >= expected_ops else 1


async def _wait_for_operations(port: int, expected: int, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    operations: list[dict[str, object]] = []
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"http://127.0.0.1:{port}/_fake/operations") as response:
                operations = await response.json()
            if len(operations) >= expected:
                break
            await asyncio.sleep(0.5)
    return operations


def _report(
    operations: list[dict[str, object]],
    dead: list[dict[str, object]],
    hooks: list[dict[str, object]],
) -> None:
    print()
    regions = collections.Counter(str(op["region"]) for op in operations)
    by_region = ", ".join(f"{region.upper()} host: {n}" for region, n in sorted(regions.items()))
    print(f"Customer.io (fake) accepted {len(operations)} operations ({by_region})")
    kinds = collections.Counter(
        f"{op['operation']['type']}.{op['operation']['action']}"  # type: ignore[index]
        for op in operations
    )
    for kind, count in kinds.most_common():
        print(f"  {count:>6}  {kind}")
    sample = next((op["operation"] for op in operations if op["operation"]["action"] == "event"), None)  # type: ignore[index]
    if sample is not None:
        print(f"  e.g. {orjson.dumps(sample).decode()[:300]}")
    print(f"\nDead-letter topic '{DLQ_TOPIC}': {len(dead)} records")
    for record in dead[:3]:
        headers = record["headers"]
        print(f"  reason={headers.get('cio-dlq-reason')}  message={headers.get('cio-dlq-message')}")  # type: ignore[union-attr]
    print(f"\nWebhook output topic '{WEBHOOK_TOPIC}': {len(hooks)} normalized events")
    names = collections.Counter(str(h["value"].get("event")) for h in hooks if isinstance(h["value"], dict))  # type: ignore[union-attr]
    for name, count in names.most_common():
        print(f"  {count:>6}  {name}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000, help="Segment events to send (default 1000)")
    args = parser.parse_args()
    workdir = ROOT / ".cache" / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    say("starting Kafka (first run downloads the pinned Apache Kafka jars with Maven; later runs take seconds)")
    with provide_broker() as bootstrap:
        say(f"Kafka at {bootstrap}")
        return asyncio.run(demo(args.events, bootstrap, workdir))


if __name__ == "__main__":
    raise SystemExit(main())
