"""docker-compose.yml, Dockerfile and .dockerignore: valid, wired together, and runnable by the real CLI."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from connector.cli import build_parser
from connector.config import documented_settings, load_settings
from connector.devtools.kafka_broker import DOCKER_IMAGE
from tests.deploy.deploy_support import ROOT, run_tool

DIGEST = re.compile(r"^(?P<tag>[\w./-]+:[\w.-]+)@sha256:[0-9a-f]{64}$")

COMPOSE = ROOT / "docker-compose.yml"
CONNECTOR_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "CONNECTOR_INPUT_TOPICS",
    "CONNECTOR_GROUP_ID",
    "CONNECTOR_START_FROM",
    "CONNECTOR_DLQ_TOPIC",
    "CONNECTOR_WEBHOOK_TOPIC",
    "CIO_SITE_ID",
    "CIO_API_KEY",
    "CIO_APP_API_KEY",
    "CIO_REGION",
    "CIO_TRACK_URL_US",
    "CIO_TRACK_URL_EU",
    "CIO_APP_URL_US",
    "CIO_APP_URL_EU",
    "CIO_WEBHOOK_SIGNING_KEYS",
    "CONNECTOR_WEBHOOK_PORT",
    "CONNECTOR_METRICS_PORT",
    "LOG_LEVEL",
}


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return compose


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in _services()[service]["environment"].items()}


def _depends(service: str) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in _services()[service]["depends_on"].items()}


def test_docker_compose_config_is_valid(docker_compose: str) -> None:
    """`docker-compose config -q` accepts the file (offline: no engine needed)."""
    run_tool([docker_compose, "-f", str(COMPOSE), "config", "-q"])


def test_services() -> None:
    """Kafka, topic creator, fake Customer.io, connector, sample producer, Prometheus and Grafana."""
    services = _services()
    assert set(services) == {"kafka", "kafka-init", "fake-cio", "connector", "demo-producer", "prometheus", "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.1.2@sha256:")
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    assert services["kafka"]["image"] == DOCKER_IMAGE  # the tests' container broker: one pin for both
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    for name in ("fake-cio", "connector", "demo-producer"):
        assert services[name]["image"] == "cio-connector:dev", name
        assert services[name]["build"]["context"] == ".", name


def test_external_images_are_pinned_by_digest() -> None:
    """Every image pulled from a registry is named by tag and digest: a re-pushed tag cannot change it."""
    for name, service in _services().items():
        if "build" in service:
            continue
        assert DIGEST.match(service["image"]), f"{name}: {service['image']} is not pinned by digest"


def test_start_order_waits_for_health() -> None:
    """Each service starts once what it needs is healthy, so the dashboard fills within a minute."""
    services = _services()
    for name in ("kafka", "fake-cio", "connector", "prometheus"):
        assert services[name]["healthcheck"]["test"], name
    assert _depends("kafka-init") == {"kafka": "service_healthy"}
    assert _depends("connector") == {"kafka-init": "service_completed_successfully", "fake-cio": "service_healthy"}
    assert _depends("demo-producer") == {"connector": "service_healthy"}
    assert _depends("prometheus") == {"connector": "service_healthy"}
    assert _depends("grafana") == {"prometheus": "service_healthy"}
    assert "/readyz" in " ".join(services["connector"]["healthcheck"]["test"])


def test_topics_created_are_the_ones_used() -> None:
    """kafka-init creates the input, dead-letter and webhook topics the connector is configured with."""
    script = " ".join(_services()["kafka-init"]["command"])
    created = set(re.findall(r"--topic (\S+)", script))
    env = _env("connector")
    assert created == {env["CONNECTOR_INPUT_TOPICS"], env["CONNECTOR_DLQ_TOPIC"], env["CONNECTOR_WEBHOOK_TOPIC"]}


def test_connector_environment_loads() -> None:
    """The connector's environment has the documented names and passes the real settings loader for `run`."""
    env = _env("connector")
    assert set(env) == CONNECTOR_ENV
    documented = {name for name, _, _ in documented_settings()}
    assert set(env) <= documented
    settings = load_settings(environ=env, role="run")
    (workspace,) = settings.workspaces
    assert (workspace.site_id, workspace.region) == ("demo-site", "us")
    assert settings.endpoints.track_url_us == "http://fake-cio:7701"
    assert settings.endpoints.app_url_eu == "http://fake-cio:7702"


@pytest.mark.parametrize("service", ["connector", "fake-cio", "demo-producer"])
def test_commands_parse_with_the_cli(service: str) -> None:
    """The commands given to the image are accepted by `cio-connector`'s own argument parser."""
    command = _services()[service]["command"]
    args = build_parser().parse_args(command)
    assert args.command == command[0]


def test_demo_traffic_reaches_the_connector() -> None:
    """The producer writes to the connector's input topic and signs webhooks with one of its keys."""
    producer, connector = _env("demo-producer"), _env("connector")
    command = _services()["demo-producer"]["command"]
    assert command[:3] == ["demo-producer", "--rate", "50"]
    assert command[command.index("--webhook-url") + 1] == f"http://connector:{connector['CONNECTOR_WEBHOOK_PORT']}"
    assert producer["CONNECTOR_INPUT_TOPICS"] == connector["CONNECTOR_INPUT_TOPICS"]
    assert producer["CIO_WEBHOOK_SIGNING_KEYS"] in connector["CIO_WEBHOOK_SIGNING_KEYS"].split(",")
    fake = _services()["fake-cio"]["command"]
    assert fake == ["fake-cio", "--us-port", "7701", "--eu-port", "7702", "--host", "0.0.0.0"]


def test_monitoring_services() -> None:
    """Prometheus loads the alert rules; Grafana serves anonymous viewers on port 3000."""
    services = _services()
    prometheus_volumes = services["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus_volumes
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus_volumes
    grafana = services["grafana"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "3000:3000" in grafana["ports"]


def test_bind_mounts_exist() -> None:
    """Every host path mounted into a container is in the repository."""
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            host = volume.split(":", 1)[0]
            assert (ROOT / host).exists(), f"{name}: {host}"


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines if line and not line.startswith("#")
    ]


def test_dockerfile() -> None:
    """Built on python:3.11 (a C compiler for mypyc), run on the slim image of the same Debian release,
    non-root, `cio-connector run`, ports 8080 and 9464, /healthz check."""
    instructions = _dockerfile()

    def args(name: str) -> list[str]:
        return [a for i, a in instructions if i == name]

    stages = args("FROM")
    assert len(stages) == 2
    build, runtime = (DIGEST.match(stage.split()[0]) for stage in stages)
    assert build, stages[0]  # pinned by digest
    assert runtime, stages[1]
    assert build["tag"].startswith("python:3.11-")
    assert runtime["tag"] == build["tag"].replace("python:3.11-", "python:3.11-slim-")  # same glibc for mypyc
    assert any("COPY --from=build" in f"COPY {a}" for a in args("COPY"))
    (user,) = args("USER")
    assert user.split(":")[0] not in {"0", "root"}
    assert json.loads(args("ENTRYPOINT")[-1]) == ["cio-connector"]
    assert json.loads(args("CMD")[-1]) == ["run"]
    assert set(" ".join(args("EXPOSE")).split()) == {"8080", "9464"}
    (healthcheck,) = args("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]  # slim has no curl
    assert "/healthz" in command[2]
    compile(command[2], "HEALTHCHECK", "exec")


def test_dockerfile_base_images_name_their_tag() -> None:
    """Above each digest-pinned FROM, a comment names the tag it was taken from (what to refresh)."""
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.startswith("FROM "):
            match = DIGEST.match(line.split()[1])
            assert match, line
            assert lines[index - 1] == f"# {match['tag']}"


def test_dockerfile_installs_only_hashed_locks() -> None:
    """Third-party packages come from requirements/*.txt with --require-hashes; our wheel adds none (--no-deps)."""
    installs = [
        command.strip()
        for i, a in _dockerfile()
        if i == "RUN"
        for command in re.split(r"&&|;|\bthen\b|\belse\b", a)
        if "pip install" in command
    ]
    assert installs
    for command in installs:
        assert "--require-hashes -r requirements/" in command or "--no-deps /wheels/" in command, command
    locks = {m for c in installs for m in re.findall(r"requirements/\w+\.txt", c)}
    assert locks == {"requirements/runtime.txt", "requirements/build.txt"}


def test_dockerignore_keeps_the_build_inputs() -> None:
    """The build context holds pyproject.toml, setup.py, README.md, the locks and connector/ (nothing else)."""
    lines = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    assert lines[0] == "*"
    locks = {"requirements/runtime.txt", "requirements/build.txt"}
    assert {"!pyproject.toml", "!setup.py", "!README.md", "!connector/"} | {f"!{lock}" for lock in locks} <= set(lines)
    sources = {src for i, a in _dockerfile() if i == "COPY" and not a.startswith("--from") for src in a.split()[:-1]}
    assert sources == {"pyproject.toml", "setup.py", "README.md", "connector"} | locks
