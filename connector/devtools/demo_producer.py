"""``cio-connector demo-producer``: steady sample traffic for demos and docker compose.

Segment events go to the first input topic (one malformed record in 200, so the dead-letter path shows
up on the dashboard too); signed reporting webhooks go to the listener.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import aiohttp
import orjson

from connector.config import Settings
from connector.devtools.samples import SampleEvents, webhook_payload
from connector.errors import BrokerUnavailableError
from connector.kafka import Producer
from connector.logs import get_logger
from connector.webhook.signature import sign

log = get_logger("demo_producer")
TICK_SECONDS = 0.1
BAD_RECORD_EVERY = 200


async def produce_forever(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> None:
    """Send ``args.rate`` events per second (and a webhook per ten events) until ``stop`` or ``args.count``."""
    if not settings.sink.input_topics:
        raise SystemExit("cio-connector: config error: CONNECTOR_INPUT_TOPICS: required for demo-producer")
    topic = settings.sink.input_topics[0]
    url = args.webhook_url or f"http://127.0.0.1:{settings.webhook.port}"
    url = url.rstrip("/") + settings.webhook.path
    key = settings.webhook.signing_keys[0].reveal() if settings.webhook.signing_keys else None
    samples = SampleEvents(seed=int(time.time()))
    rng = random.Random()
    producer = Producer(settings.kafka)
    while not stop.is_set():
        try:
            await producer.start()
            break
        except BrokerUnavailableError as exc:
            log.warning("Kafka not reachable yet; retrying.", error=str(exc))
            await asyncio.sleep(2)
    sent = hooks = 0
    carry = 0.0
    async with aiohttp.ClientSession() as http:
        try:
            while not stop.is_set() and (not args.count or sent < args.count):
                carry += args.rate * TICK_SECONDS
                n = int(carry)
                carry -= n
                if args.count:
                    n = min(n, args.count - sent)
                now_ms = int(time.time() * 1000)
                items: list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]] = []
                for _ in range(n):
                    sent += 1
                    if sent % BAD_RECORD_EVERY == 0:
                        items.append((b"bad", b"{not json", ()))
                        continue
                    message = samples.message(now_ms)
                    items.append((str(message["userId"]).encode(), orjson.dumps(message), ()))
                if items:
                    await producer.send_many(topic, items)
                if key is not None and n:
                    for _ in range(max(1, n // 10)):
                        hooks += 1
                        await _post_webhook(http, url, key, webhook_payload(rng, int(time.time()), hooks))
                await asyncio.sleep(TICK_SECONDS)
        finally:
            await producer.stop()
    log.info("Demo producer stopped.", events=sent, webhooks=hooks)


async def _post_webhook(http: aiohttp.ClientSession, url: str, key: str, payload: dict[str, object]) -> None:
    body = orjson.dumps(payload)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-CIO-Timestamp": timestamp,
        "X-CIO-Signature": sign(key, timestamp, body),
    }
    try:
        async with http.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as response:
            if response.status != 200:
                log.warning("Webhook not accepted.", status=response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("Webhook listener not reachable.", error=str(exc))
