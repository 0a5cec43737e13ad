"""Memory held by slow clients: N connections each announce a ~1 MB body, send most of it, then stall.

    .venv/bin/python bench/webhook_slow_clients.py [--clients 150] [--signed]

The listener runs in a child process (fake producer); the parent opens the connections on 127.0.0.1,
sends 90% of each body, and samples the child's RSS (peak) over ``--hold`` seconds. Unsigned requests
are refused before their body is read; signed ones are bounded by the read cap and the read timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from pathlib import Path

BODY_BYTES = 1_000_000


def _serve(port_queue: multiprocessing.Queue[int], key: str) -> None:  # child process
    from connector.config import Secret, WebhookSettings
    from connector.metrics import Metrics
    from connector.webhook.listener import WebhookListener

    class Producer:
        started = True

        async def send(self, *_args: object, **_kwargs: object) -> None:
            return None

    async def main() -> None:
        settings = WebhookSettings(signing_keys=(Secret(key),), port=0, host="127.0.0.1")
        listener = WebhookListener(settings, Producer(), Metrics())
        await listener.start()
        port_queue.put(listener.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _run(clients: int, signed: bool, hold: float) -> None:
    from connector.webhook.signature import sign

    key = "bench-key"
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    child = multiprocessing.Process(target=_serve, args=(queue, key), daemon=True)
    child.start()
    port = queue.get(timeout=30)
    body = b'{"event_id":"x","pad":"' + b"x" * (BODY_BYTES - 30) + b'"}'
    ts = str(int(time.time()))
    headers = f"POST /webhooks/customerio HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
    if signed:
        headers += f"X-CIO-Timestamp: {ts}\r\nX-CIO-Signature: {sign(key, ts, body)}\r\n"
    head = (headers + "\r\n").encode()
    baseline = _rss_mb(child.pid or 0)
    writers = []
    for _ in range(clients):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + body[: len(body) * 9 // 10])
        writers.append(writer)
    peak, started = baseline, time.monotonic()
    while time.monotonic() - started < hold:
        peak = max(peak, _rss_mb(child.pid or 0))
        await asyncio.sleep(0.1)
    print(f"clients={clients} signed={signed}: RSS baseline {baseline:.0f} MB, peak {peak:.0f} MB over {hold:.0f} s")
    for writer in writers:
        writer.close()
    child.terminate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--signed", action="store_true")
    parser.add_argument("--hold", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(_run(args.clients, args.signed, args.hold))
