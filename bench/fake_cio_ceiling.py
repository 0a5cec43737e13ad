"""How many operations per second the fake Customer.io accepts from one client.

Starts ``python -m connector.fake_cio.cli`` in its own process (so the client does not share its CPU),
posts pre-serialized 500-operation ``/api/v2/batch`` bodies from one aiohttp session with a few requests
in flight, and prints accepted operations per second (checked against the fake's own counter). On a
shared machine the wall-clock rate depends on what else runs, so it also prints the fake's own CPU time
per batch (Linux ``/proc``) and the rate one fully available core would sustain.

    .venv/bin/python bench/fake_cio_ceiling.py [--seconds 5] [--in-flight 4] [--batch 500] [--max-recorded N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import aiohttp
import orjson

SITE, KEY = "bench-site", "bench-key"


def make_body(size: int, round_: int) -> bytes:
    """A realistic batch: identifies and events with a handful of attributes each."""
    ops = []
    for i in range(size):
        person = {"id": f"user-{round_}-{i}"}
        if i % 2:
            ops.append(
                {
                    "type": "person",
                    "action": "event",
                    "identifiers": person,
                    "name": "Order Completed",
                    "id": "01JGD8S8Z6Q0R1W4K7M2T9B3XH",
                    "timestamp": 1735689100,
                    "attributes": {"order_id": f"A-{i}", "total": 42.5, "currency": "EUR", "items": 3},
                }
            )
        else:
            ops.append(
                {
                    "type": "person",
                    "action": "identify",
                    "identifiers": person,
                    "timestamp": 1735689000,
                    "attributes": {"email": f"u{i}@example.com", "plan": "pro", "created_at": 1735600000},
                }
            )
    return orjson.dumps({"batch": ops})


async def drive(url: str, seconds: float, in_flight: int, batch: int) -> tuple[int, float]:
    """Post batches for ``seconds``; return (operations sent in 200 answers, elapsed seconds)."""
    bodies = [make_body(batch, r) for r in range(8)]
    headers = {"Authorization": aiohttp.encode_basic_auth(SITE, KEY), "Content-Type": "application/json"}
    sent = 0
    async with aiohttp.ClientSession() as session:
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()

        async def worker(n: int) -> None:
            nonlocal sent
            while time.perf_counter() < deadline:
                async with session.post(f"{url}/api/v2/batch", data=bodies[n % 8], headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                sent += batch
                n += 1

        await asyncio.gather(*(worker(i) for i in range(in_flight)))
        elapsed = time.perf_counter() - start
        async with session.get(f"{url}/_fake/stats") as resp:
            accepted = (await resp.json())["accepted_operations"].get("bench", 0)
    assert accepted == sent, (accepted, sent)
    return sent, elapsed


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux), or None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    """Run the measurement and print the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--max-recorded", type=int, default=None, help="Passed to the fake (default: its own).")
    args = parser.parse_args()
    command = [sys.executable, "-m", "connector.fake_cio.cli", "--us-port", "0", "--eu-port", "0"]
    command += ["--workspace", f"bench:{SITE}:{KEY}:us"]
    if args.max_recorded is not None:
        command += ["--max-recorded", str(args.max_recorded)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as fake:
        try:
            assert fake.stdout is not None
            url = fake.stdout.readline().rsplit(" ", 1)[1].strip()
            cpu_before = cpu_seconds(fake.pid)
            sent, elapsed = asyncio.run(drive(url, args.seconds, args.in_flight, args.batch))
            cpu_after = cpu_seconds(fake.pid)
        finally:
            fake.terminate()
    batches = sent / args.batch
    body_kb = len(make_body(args.batch, 0)) / 1000
    print(
        f"{sent / elapsed:,.0f} operations/s accepted ({batches / elapsed:,.0f} batches/s of "
        f"{args.batch} ops, ~{body_kb:.0f} KB each, {args.in_flight} in flight, {elapsed:.1f} s)"
    )
    if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
        cpu = cpu_after - cpu_before
        print(
            f"fake CPU: {cpu / batches * 1000:.2f} ms per batch ({cpu / elapsed:.0%} of a core) "
            f"→ {sent / cpu:,.0f} operations/s per fully available core"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
