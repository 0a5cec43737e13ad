"""A real Apache Kafka broker for development, tests and CI, without Docker.

Kafka runs from its jars (``kafka_jars.fetch_jars``): ``java -cp libs/* kafka.Kafka`` runs a single-node
KRaft broker (broker and controller in one process) on 127.0.0.1.

``provide_broker()`` takes the first of, in order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` is set: that broker; nothing is started.
2. A Docker engine answers: an ``apache/kafka:KAFKA_VERSION`` container (testcontainers).
3. Java ≥ 17: ``LocalKafka``, jars from Maven (``mvn`` on PATH) or else from the Apache release tarball.

Standard library only at import time.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from connector.devtools.kafka_jars import KAFKA_VERSION, KafkaLocalError, _tail, fetch_jars

if TYPE_CHECKING:
    from connector.devtools.kafka_security import BrokerSecurity

# By digest (the multi-arch index of the tag); refresh with `docker buildx imagetools inspect apache/kafka:TAG`.
DOCKER_IMAGE = f"apache/kafka:{KAFKA_VERSION}@sha256:5cc2a2fd93fa2687b44015eee04fb2c3edd9e526bd64bf8bec5ff1e268772e0e"
# C1-only JIT: ready about a third sooner; a development broker does not need peak throughput.
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
HOW_TO_GET_A_BROKER = (
    "To get a Kafka broker: set KAFKA_BOOTSTRAP_SERVERS=host:port of a running one "
    "(e.g. `export KAFKA_BOOTSTRAP_SERVERS=$(scripts/kafka-local start)`), or start a Docker engine, "
    "or install Java 17+ plus Maven (or network access to archive.apache.org) so one is started for you."
)
# Single-node settings shared by the local broker and the Docker image.
DEV_BROKER_PROPERTIES = {
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",  # 50 by default: the first group commit would wait for all of them
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.network.threads": "2",
    "num.io.threads": "2",
}
_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
# The 400-line configuration dump on every start; server.properties is next to the log.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def java_executable() -> str | None:
    """``$JAVA_HOME/bin/java`` if present, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_major_version() -> int | None:
    """The major version of ``java_executable()`` (8, 17, 21 …), or None without a working Java."""
    java = java_executable()
    if java is None:
        return None
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2]) if major == 1 and match[2] else major


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def broker_ready(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether host:port answers a Kafka metadata request naming a broker and an active controller."""
    client_id = b"kafka-local"
    # Metadata v1 (api key 3), correlation id 1, an empty topic list (v1: empty = none, null = all).
    request = struct.pack(">hhih", 3, 1, 1, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            body = _recv_exact(sock, size)
        correlation_id, brokers = struct.unpack_from(">ii", body)
        offset = 8
        for _ in range(brokers):  # node id, host, port, nullable rack
            (host_length,) = struct.unpack_from(">h", body, offset + 4)
            offset += 4 + 2 + host_length + 4
            (rack_length,) = struct.unpack_from(">h", body, offset)
            offset += 2 + max(rack_length, 0)
        (controller_id,) = struct.unpack_from(">i", body, offset)
    except (OSError, struct.error):
        return False
    return bool(correlation_id == 1 and brokers > 0 and controller_id >= 0)


class LocalKafka:
    """A single-node KRaft broker (broker and controller in one JVM) run from the cached jars.

    ``stop()`` keeps ``data_dir`` and the ports, so ``start()`` brings the same broker back with its
    records. ``close()`` (and leaving the ``with`` block) also removes a data directory it created.
    ``security`` adds secured listeners (``kafka_security``) next to the PLAINTEXT one, each on a port of its
    own (``listener_bootstrap(name)``).
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        heap_mb: int = 512,
        *,
        security: BrokerSecurity | None = None,
    ) -> None:
        self._port_given = port is not None
        self.port = port or _free_port()
        self.controller_port = self._other_free_port()
        self.security = security
        self.listener_ports = self._secured_ports()
        self._owns_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="kafka-local-"))
        if self._owns_data_dir:  # runs after the atexit stop() registered by start(): last in, first out
            atexit.register(shutil.rmtree, self.data_dir, ignore_errors=True)
        self.heap_mb = heap_mb
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False

    def _other_free_port(self) -> int:
        port = _free_port()
        while port == self.port:
            port = _free_port()
        return port

    def _secured_ports(self) -> dict[str, int]:
        ports: dict[str, int] = {}
        for name in self.security.listener_names if self.security else ():
            port = _free_port()
            while port in (self.port, self.controller_port, *ports.values()):
                port = _free_port()
            ports[name] = port
        return ports

    def listener_bootstrap(self, name: str) -> str:
        """``127.0.0.1:PORT`` of a secured listener (a name of ``security.listener_names``)."""
        return f"127.0.0.1:{self.listener_ports[name]}"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's stdout and stderr (and the storage formatter's)."""
        return self.data_dir / "broker.log"

    @property
    def log_dir(self) -> Path:
        """Kafka's ``log.dirs``: the records and the metadata log."""
        return self.data_dir / "kraft"

    @property
    def pid(self) -> int | None:
        """Process id of the running JVM."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the JVM started by ``start()`` is still alive."""
        return self._process is not None and self._process.poll() is None

    def server_properties(self) -> str:
        """The broker's ``server.properties``."""
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            # A static quorum keeps the voter's address in this file only, so a restart may change ports.
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.log_dir),
            **DEV_BROKER_PROPERTIES,
        }
        if self.security is not None:
            secured = {name: f"{name}://127.0.0.1:{port}" for name, port in self.listener_ports.items()}
            for key in ("listeners", "advertised.listeners"):
                properties[key] = ",".join((properties[key], *secured.values()))
            protocols = (f"{name}:{self.security.protocol(name)}" for name in secured)
            properties["listener.security.protocol.map"] = ",".join(
                (properties["listener.security.protocol.map"], *protocols)
            )
            properties |= self.security.properties()
        return "".join(f"{key}={value}\n" for key, value in properties.items())

    def start(self, timeout: float = 120, *, detach: bool = False) -> str:
        """Start (or restart) the broker; return its bootstrap address once a client can use it.

        ``detach`` puts the JVM in its own session and lets it outlive this process (the command line);
        otherwise it is stopped when the interpreter exits at the latest.
        """
        if self.running:
            return self.bootstrap
        deadline = time.monotonic() + timeout
        libs = fetch_jars()
        java = java_executable()
        if java is None:
            raise KafkaLocalError(f"java not found (JAVA_HOME or PATH). {HOW_TO_GET_A_BROKER}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            (self.data_dir / "server.properties").write_text(self.server_properties())
            (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
            if not (self.log_dir / "meta.properties").exists():
                self._format(java, libs, deadline)
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._launch(java, libs, detach)
            try:
                self._wait_ready(deadline, timeout)
            except KafkaLocalError:
                # A picked port can be taken by someone else before the JVM binds it: pick again.
                retry = not (self._port_given or self._started_once) and attempt < 2
                if not (retry and "Address already in use" in self._log_text(log_offset)):
                    raise
                self.port = _free_port()
                self.controller_port = self._other_free_port()
                self.listener_ports = self._secured_ports()
                continue
            break
        self._started_once = True
        return self.bootstrap

    def _java_argv(self, java: str, libs: Path, heap_mb: int, main: str, *args: str) -> list[str]:
        logging_config = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        extra = self.security.jvm_options() if self.security else []
        return [java, f"-Xmx{heap_mb}m", *JVM_OPTIONS, *extra, logging_config, "-cp", str(libs / "*"), main, *args]

    def _format(self, java: str, libs: Path, deadline: float) -> None:
        cluster_id = "-"
        while cluster_id.startswith("-"):  # would read as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        properties = str(self.data_dir / "server.properties")
        argv = self._java_argv(java, libs, 256, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", properties)
        argv += self.security.format_arguments() if self.security else []  # SCRAM users: only at format time
        with self.log_path.open("ab") as log:
            try:
                result = subprocess.run(  # noqa: S603 — fixed argv
                    argv,
                    check=False,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=deadline - time.monotonic(),
                )
            except subprocess.TimeoutExpired as exc:
                raise KafkaLocalError(f"formatting {self.log_dir} timed out; see {self.log_path}") from exc
        if result.returncode != 0:
            raise KafkaLocalError(
                f"formatting {self.log_dir} failed (exit {result.returncode}); see {self.log_path}\n{self._log_tail()}"
            )

    def _launch(self, java: str, libs: Path, detach: bool) -> None:
        argv = self._java_argv(java, libs, self.heap_mb, "kafka.Kafka", str(self.data_dir / "server.properties"))
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 — fixed argv
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=detach,
            )
        if not detach:
            atexit.register(self.stop)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        assert self._process is not None  # noqa: S101 — set by _launch
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                atexit.unregister(self.stop)
                raise KafkaLocalError(
                    f"Kafka exited with code {code} while starting; see {self.log_path}\n{self._log_tail()}"
                )
            if broker_ready("127.0.0.1", self.port, timeout=2.0):
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise KafkaLocalError(f"Kafka not ready within {timeout:g} s; see {self.log_path}\n{self._log_tail()}")
            time.sleep(0.1)

    def _log_text(self, offset: int = 0) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        return _tail(self._log_text(max(0, self.log_path.stat().st_size - 65536) if self.log_path.exists() else 0))

    def wait(self) -> int:
        """Block until the broker exits by itself; its exit code."""
        if self._process is None:
            return 0
        return self._process.wait()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (controlled shutdown) and wait; SIGKILL after ``timeout`` seconds. Keeps the data."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL: a crash. The next ``start()`` recovers the logs."""
        process, self._process = self._process, None
        atexit.unregister(self.stop)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop, and remove the data directory if this object created it."""
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def docker_reachable(timeout: float = 1.0) -> bool:
    """Whether a Docker engine answers on ``$DOCKER_HOST`` (unix or tcp) or /var/run/docker.sock."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(timeout)
                sock.connect(host.removeprefix("unix://"))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return b" 200 " in sock.recv(64)
        if host.startswith("tcp://"):
            address, _, port = host.removeprefix("tcp://").partition(":")
            with socket.create_connection((address, int(port or 2375)), timeout=timeout):
                return True
    except (OSError, ValueError):
        return False
    return False


@contextlib.contextmanager
def _docker_broker(timeout: float) -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.docker_client import DockerClient

    host, port = DockerClient().host(), _free_port()
    settings = {
        "node.id": "1",
        "process.roles": "broker,controller",
        "listeners": "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9094,CONTROLLER://localhost:9093",
        "advertised.listeners": f"PLAINTEXT://{host}:{port},BROKER://localhost:9094",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "BROKER",
        "controller.listener.names": "CONTROLLER",
        "controller.quorum.voters": "1@localhost:9093",
        **DEV_BROKER_PROPERTIES,
    }
    # The image turns KAFKA_A_B into a.b; CLUSTER_ID formats the storage on first boot.
    env = {"KAFKA_" + key.upper().replace(".", "_"): value for key, value in settings.items()}
    container = (
        DockerContainer(DOCKER_IMAGE).with_bind_ports(9092, port).with_envs(CLUSTER_ID="ciocnctrlocalkafka0001", **env)
    )
    container.start()
    try:
        deadline = time.monotonic() + timeout
        while not broker_ready(host, port):
            if time.monotonic() >= deadline:
                raise KafkaLocalError(f"{DOCKER_IMAGE} not ready within {timeout:g} s")
            time.sleep(0.2)
        yield f"{host}:{port}"
    finally:
        container.stop()


def _start_any_broker(stack: contextlib.ExitStack, timeout: float) -> str:
    if docker_reachable():
        try:
            return stack.enter_context(_docker_broker(timeout))
        except Exception as exc:  # noqa: BLE001 - any Docker failure: fall back to the local broker
            docker_error = f"Docker broker failed ({exc}); "
    else:
        docker_error = "no Docker engine; "
    major = java_major_version()
    if major is None or major < 17:
        found = "no java" if major is None else f"java {major}"
        raise KafkaLocalError(
            f"no Kafka broker: KAFKA_BOOTSTRAP_SERVERS unset, {docker_error}{found}. {HOW_TO_GET_A_BROKER}"
        )
    kafka = stack.enter_context(contextlib.closing(LocalKafka()))
    return kafka.start(timeout)


@contextlib.contextmanager
def provide_broker(timeout: float = 180) -> Iterator[str]:
    """Yield a broker's bootstrap address, first of: $KAFKA_BOOTSTRAP_SERVERS, Docker, a local JVM.

    Raises KafkaLocalError (saying how to get a broker) when none can be had; a started broker is
    stopped and its data removed on exit.
    """
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        yield configured
        return
    with contextlib.ExitStack() as stack:
        yield _start_any_broker(stack, timeout)
