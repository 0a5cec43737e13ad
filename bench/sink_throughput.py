"""Sink benchmark: end-to-end events/s from a real Kafka broker to the fake Customer.io, against a ceiling.

In one run, on the same records:
  ceiling     raw aiokafka consume + orjson decode of every record (what any Python consumer pays);
  map ceiling aiokafka consume + decode + map + serialize every record, no HTTP, in this process, with the
              same mapping code as the connector (--compiled: the compiled one): the unavoidable work;
  end-to-end  `cio-connector sink` (its own process) consuming the same backlog, mapping, batching and
              POSTing to `cio-connector fake-cio` (its own process) until every operation is accepted;
  ratios      end-to-end / each ceiling, and connector CPU per event / map ceiling CPU per record;
  max RSS     of the connector process, sampled every 50 ms.

    .venv/bin/python bench/sink_throughput.py                 # 200,000 records
    .venv/bin/python bench/sink_throughput.py --records 1000000   # the 1M-record backlog memory check
    .venv/bin/python bench/sink_throughput.py --workspaces 20     # the backlog spread over 20 workspaces

``--workspaces N`` gives each of N workspaces (on the fake, in the connector's YAML) its own topic
(4 partitions for one workspace, else one each) and spreads the records over them in chunks of 5,000.
``--workspaces N --header-routed`` instead produces to ONE topic of 8 partitions and names the workspace
of each chunk of 5,000 in the ``cio-workspace`` header (``CONNECTOR_WORKSPACE_HEADER``, with the topic's
``header_workspaces`` allow-list listing all N): the issue's scenario, where the partitions do not grow
with the workspaces. ``--heap-profile OUT.txt`` runs the connector under tracemalloc (bench/heap_probe.py)
and leaves its top allocation sites in OUT.txt (slow: for finding where memory goes, not for figures).

The broker comes from KAFKA_BOOTSTRAP_SERVERS, else it is started (connector.devtools.kafka_local).
Everything runs on this machine, so the broker's JVM, the fake and the connector share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing
import uuid
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent

from compiled_tree import compiled_tree, import_path  # noqa: E402 - bench/ is on sys.path when run as a script

# --compiled: this process's map ceiling runs the compiled mapping layer too (before any connector import).
sys.path[:0] = import_path(compiled="--compiled" in sys.argv)

from aiokafka import AIOKafkaConsumer  # noqa: E402 - after the path tweak, for running from a checkout

from connector.config import KafkaSettings, load_settings  # noqa: E402
from connector.devtools.kafka_local import provide_broker  # noqa: E402
from connector.devtools.samples import SampleEvents  # noqa: E402
from connector.kafka import Producer, ensure_topics  # noqa: E402
from connector.sink.mapping.decode import decode_record  # noqa: E402
from connector.sink.mapping.mapper import Mapper  # noqa: E402
from connector.sink.mapping.model import MessageContext  # noqa: E402

PARTITIONS = 4
HEADER_ROUTED_PARTITIONS = 8
WORKSPACE_HEADER = "cio-workspace"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fill(kafka: KafkaSettings, topics: list[str], count: int, header_workspaces: int = 0) -> int:
    """Produce ``count`` sample records, chunks of 5,000 over ``topics`` in turn; return their operations.

    With ``header_workspaces`` N > 0, chunk ``k`` names workspace ``w<k mod N>`` in the workspace header.
    """
    samples = SampleEvents(seed=42, users=20_000)
    mapper = Mapper(load_settings({}).mapping)
    producer = Producer(kafka, linger_ms=50, compression="lz4")
    await producer.start()
    operations = 0
    now = int(time.time() * 1000)
    try:
        for chunk, start in enumerate(range(0, count, 5_000)):
            topic = topics[chunk % len(topics)]
            headers = ((WORKSPACE_HEADER, f"w{chunk % header_workspaces}".encode()),) if header_workspaces else ()
            items: list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]] = []
            for i in range(start, min(count, start + 5_000)):
                message = samples.message(now - (count - i))
                mapped = mapper.map(message, MessageContext(topic, 0, i, 0, now))
                operations += len(mapped) if isinstance(mapped, tuple) else 0
                items.append((str(message["userId"]).encode(), orjson.dumps(message), headers))
            await producer.send_many(topic, items)
    finally:
        await producer.stop()
    return operations


def _fresh_group_consumer(kafka: KafkaSettings, topics: list[str], group_prefix: str) -> AIOKafkaConsumer:
    """A bare aiokafka consumer in a new group, reading the backlog from the start in large fetches."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"{group_prefix}-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2_000,
        fetch_max_bytes=16_777_216,
        max_partition_fetch_bytes=4 * 1_048_576,
    )


async def ceiling(kafka: KafkaSettings, topics: list[str], count: int) -> float:
    """Records/s of a bare aiokafka consumer that decodes every value with orjson."""
    consumer = _fresh_group_consumer(kafka, topics, "bench-ceiling")
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=2_000)
            for records in batches.values():
                if started is None:
                    started = time.perf_counter()
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
    finally:
        await consumer.stop()
    assert started is not None
    return count / (time.perf_counter() - started)


async def map_ceiling(kafka: KafkaSettings, topics: list[str], count: int) -> tuple[float, float]:
    """(records/s, CPU seconds per record) of consume + decode + map + serialize, no HTTP, in this process.

    The work every sink must do: aiokafka's fetch, ``decode_record`` and ``Mapper.map`` (which serializes
    each operation's body), as the connector's runner calls them; nothing is batched, sent or tracked.
    """
    mapper = Mapper(load_settings({}).mapping)
    consumer = _fresh_group_consumer(kafka, topics, "bench-map-ceiling")
    await consumer.start()
    seen = 0
    started = None
    cpu_started = 0.0
    body_bytes = 0
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=2_000)
            for part, records in batches.items():
                if started is None:
                    started, cpu_started = time.perf_counter(), time.process_time()
                for record in records:
                    messages = decode_record(record.value)
                    if not isinstance(messages, list):
                        continue
                    for index, message in enumerate(messages):
                        context = MessageContext(part.topic, part.partition, record.offset, index, record.timestamp)
                        mapped = mapper.map(message, context)
                        if isinstance(mapped, tuple):
                            for operation in mapped:
                                body_bytes += len(operation.body)
                seen += len(records)
    finally:
        await consumer.stop()
    assert started is not None
    assert body_bytes > 0
    return count / (time.perf_counter() - started), (time.process_time() - cpu_started) / count


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (stable under contention, unlike wall time)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores together (/proc/stat)."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def listening_pid(port: int) -> int | None:
    """The pid of this user's process listening on TCP ``port`` (the local broker's JVM), else None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue  # another user's process, or gone
    return None


def broker_pid(bootstrap: str) -> int | None:
    """The local broker's pid, from the first address of ``bootstrap`` (None: not on this machine)."""
    return listening_pid(int(bootstrap.split(",", maxsplit=1)[0].rsplit(":", 1)[1]))


class CpuShares:
    """CPU used by each group of processes (and the whole machine) between ``start`` and ``report``.

    Says whether the cores were saturated and who took them: the connectors, the fake, the broker's JVM,
    this benchmark, and "other" (everything else on the machine: other users' work, the kernel).
    """

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = {name: pids for name, pids in groups.items() if pids}
        self._start: dict[str, float] = {}
        self._machine = (0.0, 0.0)
        self._at = 0.0

    def _sample(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self._groups.items()}

    def start(self) -> None:
        self._start, self._machine, self._at = self._sample(), machine_cpu(), time.perf_counter()

    def report(self) -> str:
        """One line: cores busy of the machine's, then each group's cores and share of the busy time."""
        wall = time.perf_counter() - self._at
        now, (busy, total) = self._sample(), machine_cpu()
        busy, total = busy - self._machine[0], total - self._machine[1]
        used = {name: now[name] - self._start[name] for name in now}
        used["other"] = max(0.0, busy - sum(used.values()))
        cores = total / wall if wall > 0 else 0.0
        parts = "  ".join(f"{name} {seconds / wall:.2f} ({seconds / busy:.0%})" for name, seconds in used.items())
        return f"{busy / wall:.2f} of {cores:.0f} cores busy ({busy / total:.0%}); cores (share): {parts}"


TRACED = (
    "connector_partitions_paused",
    "connector_records_in_flight",
    "connector_operations_buffered",
    "connector_in_flight_requests",
    "connector_concurrency_limit",
)


async def trace_line(http: aiohttp.ClientSession, metrics_url: str, accepted: int, elapsed: float) -> str:
    """One line of the connector's flow-control gauges (where it waits), for --trace."""
    try:
        async with http.get(metrics_url) as response:
            text = await response.text()
    except aiohttp.ClientError:
        return f"{elapsed:6.2f}s  accepted={accepted:,}  (metrics unavailable)"
    values: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in TRACED:
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    short = " ".join(f"{name.removeprefix('connector_')}={values.get(name, 0):.0f}" for name in TRACED)
    return f"{elapsed:6.2f}s  accepted={accepted:,}  {short}"


async def gauge(http: aiohttp.ClientSession, port: int, name: str) -> float:
    """A metric of the connector on metrics port ``port``, summed over its labels (0 when unavailable)."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.split("{", 1)[0].split(" ", 1)[0] == name
    )


def workspaces_config(topics: list[str], header_workspaces: int = 0) -> str:
    """A YAML file giving workspace ``w<i>`` the topic ``topics[i]`` (site ``site-<i>``, key ``key-<i>``).

    With ``header_workspaces`` N > 0 (one topic): N workspaces, ``w0`` owning the topic, and the topic's
    header allowed to name every one of them.
    """
    if header_workspaces:
        (topic,) = topics
        owned = [topic] + [f"{topic}-unused-{i}" for i in range(1, header_workspaces)]
        allowed = ", ".join(f"w{i}" for i in range(header_workspaces))
    else:
        owned, allowed = topics, ""
    lines = ["workspaces:"]
    lines += [
        f"  - {{name: w{i}, site_id: site-{i}, api_key: key-{i}, region: us, topics: [{t}]}}"
        for i, t in enumerate(owned)
    ]
    if allowed:
        lines += ["topics:", f"  {topic}: {{header_workspaces: [{allowed}]}}"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="bench-workspaces-", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
    return handle.name


def connector_env(
    bootstrap: str,
    topics: list[str],
    us: int,
    eu: int,
    *,
    compiled: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of the fake and of every connector: default settings, the fake as Customer.io."""
    return {
        **os.environ,
        # --compiled: the mypyc-compiled mapping layer (scripts/build-compiled) in front of the sources.
        "PYTHONPATH": f"{compiled_tree()}:{ROOT}" if compiled else str(ROOT),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CONNECTOR_INPUT_TOPICS": ",".join(topics),
        "CONNECTOR_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "CONNECTOR_DLQ_TOPIC": f"{topics[0]}-dlq",
        "CIO_SITE_ID": "demo-site",
        "CIO_API_KEY": "demo-key",
        "CIO_REGION": "us",
        "CONNECTOR_START_FROM": "earliest",  # the backlog was produced before the group exists (default: latest)
        "CIO_TRACK_URL_US": f"http://127.0.0.1:{us}",
        "CIO_TRACK_URL_EU": f"http://127.0.0.1:{eu}",
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }


# -P: the working directory must not come before PYTHONPATH (it would shadow the compiled tree).
CLI = [sys.executable, "-P", "-m", "connector"]


def start_fake(env: dict[str, str], us: int, eu: int, workspaces: list[str] | None = None) -> subprocess.Popen[bytes]:
    """``cio-connector fake-cio`` on ``us``/``eu``, keeping no operations (``--max-recorded 0``)."""
    return subprocess.Popen(
        [*CLI, "fake-cio", "--us-port", str(us), "--eu-port", str(eu), "--max-recorded", "0", *(workspaces or [])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_connector(
    sink_cli: list[str], env: dict[str, str], metrics_port: int
) -> tuple[subprocess.Popen[bytes], typing.IO[bytes]]:
    """One connector process serving /metrics on ``metrics_port``; its stderr goes to the returned file."""
    # stderr to a file: its last line says why, should the connector exit.
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process, at exit
    return subprocess.Popen(sink_cli, env={**env, "CONNECTOR_METRICS_PORT": str(metrics_port)}, stderr=errors), errors


def exit_if_dead(connector: subprocess.Popen[bytes], errors: typing.IO[bytes]) -> None:
    """Exit this benchmark with the connector's last stderr lines if it has exited."""
    if connector.poll() is not None:
        errors.seek(0)
        last = errors.read().decode(errors="replace").strip().splitlines()[-6:]
        raise SystemExit(f"connector exited with {connector.returncode}: {chr(10).join(last)}")


async def end_to_end(  # noqa: C901 - one benchmark scenario, step by step
    bootstrap: str,
    topics: list[str],
    records: int,
    operations: int,
    *,
    replicas: int = 1,
    compiled: bool = False,
    trace: bool = False,
    extra_env: dict[str, str] | None = None,
    workspaces: int = 0,
    header_routed: bool = False,
    heap_profile: str | None = None,
    py_spy: str | None = None,
) -> tuple[float, float, float, float]:
    """(events/s, seconds, max RSS MB of any replica, CPU seconds of all replicas) delivering the backlog.

    ``replicas`` connector processes join one consumer group, as replicas of a Deployment would.
    """
    us, eu = free_port(), free_port()
    metrics_ports = [free_port() for _ in range(replicas)]
    env = connector_env(bootstrap, topics, us, eu, compiled=compiled, extra_env=extra_env)
    fake_workspaces: list[str] = []
    if workspaces:  # N workspaces from a YAML file, instead of the CIO_* default workspace
        for key in ("CIO_SITE_ID", "CIO_API_KEY", "CIO_REGION"):
            env.pop(key)
        env["CONNECTOR_CONFIG"] = workspaces_config(topics, workspaces if header_routed else 0)
        if header_routed:
            env["CONNECTOR_WORKSPACE_HEADER"] = WORKSPACE_HEADER
        for i in range(workspaces):
            fake_workspaces += ["--workspace", f"w{i}:site-{i}:key-{i}:us"]
    sink_cli = [*CLI, "sink"]
    if heap_profile:
        sink_cli = [sys.executable, "-P", str(ROOT / "bench" / "heap_probe.py"), heap_profile, "sink"]
    if py_spy:  # sample the connector's stacks (collapsed format; bench/py_spy_top.py tabulates them)
        sink_cli = [_py_spy(), "record", "--rate", "250", "--format", "raw", "--output", py_spy, "--", *sink_cli]
    fake = start_fake(env, us, eu, fake_workspaces)
    connectors: list[subprocess.Popen[bytes]] = []
    error_files: list[typing.IO[bytes]] = []
    try:
        async with aiohttp.ClientSession() as http:
            await wait_answering(http, f"http://127.0.0.1:{us}/_fake/stats")
            for port in metrics_ports:
                connector, errors = start_connector(sink_cli, env, port)
                connectors.append(connector)
                error_files.append(errors)
            pids = [c.pid for c in connectors]
            launched = time.perf_counter()
            broker = broker_pid(bootstrap)
            shares = CpuShares({"connectors": pids, "fake": [fake.pid], "broker": [broker] if broker else []})
            broker_note = "" if broker else " (the broker is not local: in other)"
            settled: tuple[float, int] | None = None  # (time, accepted) when every replica had partitions
            next_group_check = 0.0
            peak = 0.0
            started = None
            cpu_at_start = 0.0
            trail: list[float] = []  # RSS at 25, 50, 75 and 100% of the run: flat means bounded
            marks: list[tuple[float, int]] = []  # (time, accepted) at those points: the steady rate
            while True:
                peak = max(peak, *(rss_mb(pid) for pid in pids))
                cpu_now = sum(cpu_seconds(pid) for pid in pids)
                for connector, errors in zip(connectors, error_files, strict=True):
                    exit_if_dead(connector, errors)
                async with http.get(f"http://127.0.0.1:{us}/_fake/stats") as response:
                    accepted = sum((await response.json())["accepted_operations"].values())
                if started is None and accepted > 0:
                    started = time.perf_counter()
                    cpu_at_start = cpu_now
                    shares.start()
                if settled is None and time.perf_counter() >= next_group_check:  # when the group is complete
                    next_group_check = time.perf_counter() + 0.25
                    assigned = [await gauge(http, port, "connector_partitions_assigned") for port in metrics_ports]
                    if all(assigned):
                        settled = (time.perf_counter(), accepted)
                quarter = min(4, accepted * 4 // max(1, operations))
                while len(trail) < quarter:
                    trail.append(max(rss_mb(pid) for pid in pids))
                    peak = max(peak, trail[-1])  # a sample between two loop passes counts too
                    marks.append((time.perf_counter(), accepted))
                if accepted >= operations:
                    break
                if trace and started is not None:
                    for port in metrics_ports:
                        metrics_url = f"http://127.0.0.1:{port}/metrics"
                        print(await trace_line(http, metrics_url, accepted, time.perf_counter() - started), flush=True)
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_at_start
            print(f"CPU shares  {shares.report()}{broker_note}", flush=True)
            if settled is not None:
                revoked = [await gauge(http, port, "connector_partitions_revoked_total") for port in metrics_ports]
                print(
                    f"group       every replica had partitions {settled[0] - launched:.1f} s after launch, "
                    f"{settled[0] - started:+.1f} s from the first acceptance ({settled[1] / operations:.0%} "
                    f"of the operations accepted by then); partitions revoked per replica: "
                    + ", ".join(f"{n:.0f}" for n in revoked),
                    flush=True,
                )
            print("RSS at 25/50/75/100%: " + " / ".join(f"{mb:.0f}" for mb in trail) + " MB", flush=True)
            if len(marks) == 4:  # past start-up and the replicas' rebalance: operations/s from 25% to 100%
                (t0, a0), (t1, a1) = marks[0], marks[-1]
                steady = (a1 - a0) / (t1 - t0) * records / operations
                print(f"steady      25% → 100% of the run            : {steady:>10,.0f} events/s", flush=True)
            return records / elapsed, elapsed, peak, cpu
    finally:
        for child in (*connectors, fake):
            if py_spy and child is not fake:  # stop the sampled connector; py-spy then writes its file
                children = Path(f"/proc/{child.pid}/task/{child.pid}/children")
                for grandchild in children.read_text().split():  # noqa: ASYNC240 - /proc, never blocks
                    os.kill(int(grandchild), signal.SIGTERM)
                child.wait(60)
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                child.wait(30)


def _py_spy() -> str:
    """The py-spy executable next to this interpreter (``pip install py-spy``), or exit saying so."""
    found = Path(sys.executable).with_name("py-spy")
    if not found.is_file():
        raise SystemExit("--py-spy: py-spy is not installed in this venv; `.venv/bin/pip install py-spy`")
    return str(found)


async def wait_answering(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        try:
            async with http.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{url} never answered")


async def main(args: argparse.Namespace, bootstrap: str, extra_env: dict[str, str]) -> None:
    records, replicas, compiled = args.records, args.replicas, args.compiled
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    base = f"bench-sink-{uuid.uuid4().hex[:8]}"
    count = args.workspaces or 1
    header_routed = args.header_routed
    if header_routed:  # one topic, the workspace named per record by header
        topics, partitions = [base], HEADER_ROUTED_PARTITIONS
        where = f"{base}, workspace header over {count} workspace{'s' if count > 1 else ''}"
    else:
        topics = [base] if count == 1 else [f"{base}-w{i}" for i in range(count)]
        partitions = PARTITIONS if count == 1 else 1
        where = topics[0] if count == 1 else f"{count} topics"
    await ensure_topics(kafka, dict.fromkeys(topics, partitions))
    print(f"producing {records:,} sample records to {where} ({partitions} partitions each)…", flush=True)
    operations = await fill(kafka, topics, records, count if header_routed else 0)
    raw = await ceiling(kafka, topics, records)
    mapped, mapped_cpu = await map_ceiling(kafka, topics, records)
    rate, seconds, peak, cpu = await end_to_end(
        bootstrap,
        topics,
        records,
        operations,
        replicas=replicas,
        compiled=compiled,
        trace=args.trace,
        extra_env=extra_env,
        workspaces=count if args.workspaces is not None or header_routed else 0,
        header_routed=header_routed,
        heap_profile=args.heap_profile,
        py_spy=args.py_spy,
    )
    print(f"ceiling     aiokafka consume + orjson decode : {raw:>10,.0f} records/s")
    who = "connector" if replicas == 1 else f"{replicas} connector replicas"
    who += " (compiled)" if compiled else ""
    who += f", {count} workspace{'s' if count > 1 else ''}" if args.workspaces else ""
    who += " by header" if header_routed else ""
    print(f"end-to-end  Kafka → {who} → fake (HTTP): {rate:>10,.0f} events/s  ({records:,} in {seconds:.1f} s)")
    layer = "compiled" if compiled else "pure"
    print(f"map ceiling consume + decode + map + serialize ({layer}): {mapped:>10,.0f} records/s")
    print(f"            its CPU                           : {1 / mapped_cpu:>10,.0f} records per CPU-second")
    print(f"ratio       end-to-end / ceiling              : {rate / raw:>10.2f}")
    print(f"ratio       end-to-end / map ceiling          : {rate / mapped:>10.2f}   (target ≥ 0.6)")
    print(f"CPU         connector process(es)             : {records / cpu:>10,.0f} events per CPU-second")
    print(
        f"ratio       connector CPU/event ÷ map ceiling CPU/record: {cpu / records / mapped_cpu:>6.2f}   (target ≤ 1.5)"
    )
    print(f"max RSS     connector process (largest)       : {peak:>10.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument(
        "--replicas", type=int, default=1, help="connector processes in one consumer group (at most the 4 partitions)"
    )
    parser.add_argument(
        "--compiled", action="store_true", help="run the connector with the modules built by scripts/build-compiled"
    )
    parser.add_argument(
        "--workspaces", type=int, default=None, help="spread the records over N workspaces, one topic each"
    )
    parser.add_argument(
        "--header-routed",
        action="store_true",
        help="one topic of 8 partitions; each record names its workspace (of --workspaces N) in a header",
    )
    parser.add_argument("--heap-profile", metavar="OUT", help="run the connector under tracemalloc, top sites to OUT")
    parser.add_argument(
        "--py-spy", metavar="OUT", help="sample the connector with py-spy, collapsed stacks to OUT (figures skewed)"
    )
    parser.add_argument("--trace", action="store_true", help="print the connector's flow-control gauges as it runs")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="extra connector setting (repeatable)"
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    if args.compiled:
        compiled_tree()  # exits if missing or stale
    with provide_broker() as servers:
        asyncio.run(main(args, servers, extra))
