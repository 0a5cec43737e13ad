"""deploy/helm and deploy/kubernetes: the chart lints and renders in every mode; the pods are production-shaped.

One structural check (``check_connector_pod``) is applied to every rendering of the chart and to the plain
manifests: probes, ports, resources, Secret references, grace period, non-root read-only container, and a
way for Prometheus to scrape it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.config import documented_settings, load_settings
from tests.deploy.deploy_support import ROOT, run_tool

CHART = ROOT / "deploy" / "helm" / "cio-connector"
MANIFESTS = ROOT / "deploy" / "kubernetes"
SECRET_KEYS = {"CIO_SITE_ID", "CIO_API_KEY", "CIO_WEBHOOK_SIGNING_KEYS"}
APP_CONTAINER = {"name": "app", "image": "example.com/my-app:1.0.0", "ports": [{"name": "http", "containerPort": 8000}]}

SCENARIOS: dict[str, dict[str, Any]] = {
    "standalone": {},
    "standalone-keda": {
        "keda": {"enabled": True, "maxReplicaCount": 6, "topic": "segment-events"},
        "podDisruptionBudget": {"enabled": True},
    },
    "standalone-servicemonitor-existing-secret": {
        "metrics": {"podAnnotations": False, "serviceMonitor": {"enabled": True}},
        "secret": {"existingSecret": "cio-credentials"},
    },
    "sidecar": {"mode": "sidecar", "sidecar": {"containers": [APP_CONTAINER]}},
    "sidecar-keda-config": {
        "mode": "sidecar",
        "sidecar": {"containers": [APP_CONTAINER]},
        "keda": {"enabled": True},
        "config": {"workspaces": [{"name": "us-shop", "site_id": "abc", "api_key_env": "US_SHOP_KEY", "region": "us"}]},
        "env": [{"name": "US_SHOP_KEY", "valueFrom": {"secretKeyRef": {"name": "shops", "key": "us"}}}],
    },
}


def _values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def _render(helm: str, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    done = run_tool([helm, "template", "demo", str(CHART), "-f", str(_values_file(tmp_path, values))])
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def _kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def check_connector_pod(deployment: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Assert the Deployment's connector container is production-shaped; return the container."""
    for doc in docs:
        assert doc.get("apiVersion"), doc
        assert doc.get("kind"), doc
        assert doc["metadata"]["name"], doc
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container: dict[str, Any]
    (container,) = [c for c in spec["containers"] if c["name"] == "cio-connector"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook": 8080, "metrics": 9464}
    env = _env(container)

    # Probes on the metrics port.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert env["CONNECTOR_METRICS_PORT"]["value"] == "9464"
    assert env["CONNECTOR_WEBHOOK_PORT"]["value"] == "8080"

    # Bounded resources.
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]

    # Credentials only through Secret references, never as literal values.
    secret_names = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for key in SECRET_KEYS | {"CIO_APP_API_KEY"}:
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == key
        assert "value" not in env[key]
        if secret_names:
            assert ref["name"] in secret_names

    # The pod outlives the connector's own shutdown deadline (plus the preStop sleep).
    shutdown = float(env["CONNECTOR_SHUTDOWN_TIMEOUT_SECONDS"]["value"])
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["sleep", "0"])
    assert pre_stop[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > shutdown + float(pre_stop[1])

    # Non-root, read-only root filesystem (with a writable /tmp), no privilege escalation.
    pod_security = spec.get("securityContext", {})
    security = {**pod_security, **container["securityContext"]}
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])  # noqa: S108 (an emptyDir)
    volumes = {v["name"] for v in spec["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes

    # Prometheus can scrape it: pod annotations, or a ServiceMonitor on a Service port named "metrics".
    annotations = pod["metadata"].get("annotations") or {}
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    if annotations.get("prometheus.io/scrape") == "true":
        assert annotations["prometheus.io/port"] == "9464"
        assert annotations["prometheus.io/path"] == "/metrics"
    else:
        (monitor,) = monitors
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
        selected = [
            d
            for d in docs
            if d["kind"] == "Service"
            and monitor["spec"]["selector"]["matchLabels"].items() <= d["metadata"]["labels"].items()
        ]
        (service,) = selected
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}

    # The webhook port is reachable through a Service selecting the pod.
    services = [d for d in docs if d["kind"] == "Service"]
    assert any(
        s["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        and {"name": "webhook", "target": "webhook"}
        in [{"name": p["name"], "target": p["targetPort"]} for p in s["spec"]["ports"]]
        for s in services
    )
    return container


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint(helm: str, tmp_path: Path, scenario: str) -> None:
    """`helm lint --strict` passes with the scenario's values."""
    run_tool([helm, "lint", "--strict", str(CHART), "-f", str(_values_file(tmp_path, SCENARIOS[scenario]))])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_template(helm: str, tmp_path: Path, scenario: str) -> None:
    """`helm template` renders a production-shaped pod in every mode, with or without KEDA."""
    values = SCENARIOS[scenario]
    docs = _render(helm, tmp_path, values)
    deployment = _one(docs, "Deployment")
    container = check_connector_pod(deployment, docs)
    documented = {name for name, _, _ in documented_settings()}
    extra = {e["name"] for e in values.get("env", [])}
    assert set(_env(container)) - extra <= documented

    names = [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert names == (["app", "cio-connector"] if values.get("mode") == "sidecar" else ["cio-connector"])

    if values.get("keda", {}).get("enabled"):
        scaled = _one(docs, "ScaledObject")
        assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == _env(container)["CONNECTOR_GROUP_ID"]["value"]
        assert trigger["metadata"]["allowIdleConsumers"] == "false"
        assert "replicas" not in deployment["spec"]  # KEDA owns the replica count
    else:
        assert "ScaledObject" not in _kinds(docs)
        assert deployment["spec"]["replicas"] >= 1

    existing = values.get("secret", {}).get("existingSecret")
    assert ("Secret" in _kinds(docs)) is (not existing)
    if existing:
        assert _env(container)["CIO_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == existing
    assert ("PodDisruptionBudget" in _kinds(docs)) is bool(values.get("podDisruptionBudget", {}).get("enabled"))


def test_helm_config_file_is_mounted_and_loads(helm: str, tmp_path: Path) -> None:
    """`config:` becomes a ConfigMap mounted where CONNECTOR_CONFIG points, and the connector accepts it."""
    docs = _render(helm, tmp_path, SCENARIOS["sidecar-keda-config"])
    containers = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    container = next(c for c in containers if c["name"] == "cio-connector")
    path = Path(_env(container)["CONNECTOR_CONFIG"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert path.parent == Path(mount["mountPath"])
    config_map = _one(docs, "ConfigMap")
    local = tmp_path / path.name
    local.write_text(config_map["data"][path.name], encoding="utf-8")
    settings = load_settings(environ={"US_SHOP_KEY": "k", "CONNECTOR_INPUT_TOPICS": "t"}, config_path=str(local))
    assert [ws.name for ws in settings.workspaces] == ["us-shop"]


def _ingress_rules(policy: dict[str, Any]) -> dict[int, list[dict[str, Any]] | None]:
    """{port: its `from` peers (None: any source)} of a NetworkPolicy's ingress rules."""
    rules: dict[int, list[dict[str, Any]] | None] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["port"] not in rules, f"port {port['port']} in two rules"
            rules[port["port"]] = rule.get("from")
    return rules


def test_helm_network_policy_and_metrics_service_by_default(helm: str, tmp_path: Path) -> None:
    """By default the pod admits webhooks from the ingress controller and /metrics from the monitoring
    namespace only, and metrics have a Service of their own (the webhook Service carries nothing else)."""
    docs = _render(helm, tmp_path, {})
    pod_labels = _one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policy = _one(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress open: Kafka and Customer.io are external
    ingress_controller = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
    }
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert _ingress_rules(policy) == {8080: [ingress_controller], 9464: [monitoring]}

    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert set(services) == {"demo-cio-connector", "demo-cio-connector-metrics"}
    ports = {
        name: [(p["name"], p["port"], p["targetPort"]) for p in s["spec"]["ports"]] for name, s in services.items()
    }
    assert ports == {
        "demo-cio-connector": [("webhook", 8080, "webhook")],
        "demo-cio-connector-metrics": [("metrics", 9464, "metrics")],
    }
    assert all(s["spec"]["selector"].items() <= pod_labels.items() for s in services.values())


def test_helm_network_policy_and_metrics_service_can_be_disabled(helm: str, tmp_path: Path) -> None:
    """Both off: no NetworkPolicy, and the one Service carries the webhook and metrics ports, as before."""
    values = {"networkPolicy": {"enabled": False}, "metrics": {"service": {"enabled": False}}}
    docs = _render(helm, tmp_path, values)
    assert "NetworkPolicy" not in _kinds(docs)
    service = _one(docs, "Service")
    assert [p["name"] for p in service["spec"]["ports"]] == ["webhook", "metrics"]


@pytest.mark.parametrize("metrics_service", [True, False])
def test_helm_service_monitor_selects_the_service_with_metrics(
    helm: str, tmp_path: Path, metrics_service: bool
) -> None:
    """The ServiceMonitor selects exactly one Service: the metrics one, or the main one when it is off."""
    values = {"metrics": {"serviceMonitor": {"enabled": True}, "service": {"enabled": metrics_service}}}
    docs = _render(helm, tmp_path, values)
    selector = _one(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    selected = [d for d in docs if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == [
        "demo-cio-connector-metrics" if metrics_service else "demo-cio-connector"
    ]


def test_helm_network_policy_is_configurable(helm: str, tmp_path: Path) -> None:
    """The peers of each port, extra ingress rules and egress rules come from the values."""
    traefik = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}]
    prometheus = [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]
    egress = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 9092}]}]
    extra = [{"from": [{"podSelector": {"matchLabels": {"app": "debug"}}}], "ports": [{"port": 9999}]}]
    values = {
        "networkPolicy": {
            "webhook": {"from": traefik},
            "metrics": {"from": prometheus},
            "extraIngress": extra,
            "egress": egress,
        }
    }
    policy = _one(_render(helm, tmp_path, values), "NetworkPolicy")
    assert _ingress_rules(policy) == {8080: traefik, 9464: prometheus, 9999: extra[0]["from"]}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["egress"] == egress


def test_helm_network_policy_keeps_the_sidecar_applications_ports_open(helm: str, tmp_path: Path) -> None:
    """mode: sidecar: the policy restricts the connector's ports only, not the application's it shares a pod with."""
    policy = _one(_render(helm, tmp_path, SCENARIOS["sidecar"]), "NetworkPolicy")
    rules = _ingress_rules(policy)
    assert rules[8000] is None  # the application's port: any source, as without the policy
    assert rules[8080] is not None
    assert rules[9464] is not None


def test_helm_network_policy_without_peers_is_refused(helm: str, tmp_path: Path) -> None:
    """An empty `from` would silently block every webhook: the rendering fails and says what to set."""
    values: dict[str, Any] = {"networkPolicy": {"webhook": {"from": []}}}
    done = subprocess.run(
        [helm, "template", "demo", str(CHART), "-f", str(_values_file(tmp_path, values))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "networkPolicy.webhook.from is empty" in done.stderr


def test_helm_default_grace_period(helm: str, tmp_path: Path) -> None:
    """terminationGracePeriodSeconds follows shutdownTimeoutSeconds."""
    docs = _render(helm, tmp_path, {"shutdownTimeoutSeconds": 50})
    spec = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 5 + 50 + 10


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "sidecar"}, "needs sidecar.containers"),
        ({"mode": "daemon"}, "mode must be standalone or sidecar"),
    ],
)
def test_helm_rejects_bad_values(helm: str, tmp_path: Path, values: dict[str, Any], message: str) -> None:
    """An unusable mode fails the rendering with a message."""
    done = subprocess.run(
        [helm, "template", "demo", str(CHART), "-f", str(_values_file(tmp_path, values))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert message in done.stderr


def test_standalone_manifest_is_the_charts_rendering(helm: str) -> None:
    """deploy/kubernetes/standalone.yaml is what render-standalone prints (regenerate it after chart edits)."""
    done = subprocess.run(
        [str(MANIFESTS / "render-standalone")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HELM": helm, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    committed = (MANIFESTS / "standalone.yaml").read_text(encoding="utf-8")
    assert committed == done.stdout, "run: deploy/kubernetes/render-standalone > deploy/kubernetes/standalone.yaml"


@pytest.mark.parametrize("manifest", ["standalone.yaml", "sidecar-example.yaml"])
def test_plain_manifest(manifest: str) -> None:
    """The plain manifests pass the same checks as the chart, with Secret references and no Helm labels."""
    text = (MANIFESTS / manifest).read_text(encoding="utf-8")
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    assert "Secret" not in _kinds(docs)  # credentials live in a Secret the user creates
    assert "helm.sh/chart" not in text
    container = check_connector_pod(_one(docs, "Deployment"), docs)
    for key in SECRET_KEYS:
        assert _env(container)[key]["valueFrom"]["secretKeyRef"]["name"] == "cio-connector-credentials"
    assert set(_env(container)) <= {name for name, _, _ in documented_settings()}
    # Like the chart's defaults: the connector's ports admitted from the ingress controller and monitoring only.
    rules = _ingress_rules(_one(docs, "NetworkPolicy"))
    assert rules[8080] is not None
    assert rules[9464] is not None
    metrics_services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics")]
    assert [[p["name"] for p in s["spec"]["ports"]] for s in metrics_services] == [["metrics"]]
