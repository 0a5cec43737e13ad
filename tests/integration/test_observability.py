"""Observability end to end: a real Prometheus scrapes a connector that moves data; secrets never leak."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connector.config import KafkaSettings, load_settings
from connector.devtools.demo_producer import produce_forever
from connector.fake_cio.server import FakeCustomerIO
from connector.fake_cio.state import Workspace
from tests.integration.harness import ROOT, connector_env, free_port, start_process

pytestmark = pytest.mark.integration

DASHBOARD = ROOT / "grafana" / "dashboards" / "cio-connector.json"
SECRETS = {
    "CIO_API_KEY": "sk-track-4f9c2e71d0",
    "CIO_APP_API_KEY": "sk-app-8b1d9a3377",
    "CIO_WEBHOOK_SIGNING_KEYS": "whsec-current-5521,whsec-previous-9913",
}


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel, rows included."""
    queries: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            queries.extend((panel.get("title", "?"), t["expr"]) for t in panel.get("targets", []) if t.get("expr"))
            walk(panel.get("panels", []))

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return queries


@pytest.fixture
async def fake() -> AsyncIterator[FakeCustomerIO]:
    """The fake Customer.io, with the keys under test."""
    ws = Workspace("demo", "demo-site", SECRETS["CIO_API_KEY"], "us", app_api_key=SECRETS["CIO_APP_API_KEY"])
    async with FakeCustomerIO([ws]) as server:
        yield server


async def test_every_dashboard_query_has_data_and_no_secret_leaks(
    kafka_settings: KafkaSettings, topic_factory: Any, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """Prometheus scraping a busy connector answers every panel query with data; keys appear nowhere."""
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is not installed: run scripts/install-test-tools"
    topic, dlq, hooks = await topic_factory(partitions=2), await topic_factory(), await topic_factory()
    webhook_port = free_port()
    env = connector_env(
        kafka_settings.bootstrap_servers,
        fake,
        [topic],
        dlq,
        CONNECTOR_WEBHOOK_TOPIC=hooks,
        CONNECTOR_WEBHOOK_PORT=str(webhook_port),
        CIO_REGION="auto",
        LOG_LEVEL="DEBUG",
        **SECRETS,
    )
    metrics_port = int(env["CONNECTOR_METRICS_PORT"])
    log_path = tmp_path / "connector.log"
    connector = start_process(env, "run", log_path)
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: cio-connector, static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]}}]\n"
    )
    prom = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    missing: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            await _wait_ready(http, f"http://127.0.0.1:{metrics_port}/readyz")
            settings = load_settings(env)
            traffic = argparse.Namespace(rate=400.0, webhook_url=f"http://127.0.0.1:{webhook_port}", count=8_000)
            producing = asyncio.create_task(produce_forever(settings, traffic, asyncio.Event()))
            await asyncio.sleep(25)  # rates over [1m] need a few scrapes of rising counters
            for title, query in panel_queries():
                result = await _query(http, prom_port, query)
                if not result:
                    missing.append(f"{title}: {query}")
            await producing
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                exposition = await response.text()
    finally:
        prom.terminate()
        connector.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(connector.wait, 60)
        prom.wait(10)
    assert not missing, "panels without data:\n" + "\n".join(missing)
    assert code == 0
    logs = log_path.read_text()
    assert "Service started." in logs
    for name, value in SECRETS.items():
        for secret in value.split(","):
            assert secret not in logs, f"{name} appears in the logs"
            assert secret not in exposition, f"{name} appears in /metrics"


async def test_bad_credentials_error_line_never_shows_the_key(
    kafka_settings: KafkaSettings, fake: FakeCustomerIO, tmp_path: Path
) -> None:
    """A rejected key: `sink` refuses to start with one line naming the reason, not the key."""
    env = connector_env(kafka_settings.bootstrap_servers, fake, ["unused"], "unused-dlq", CIO_REGION="auto")
    env["CIO_API_KEY"] = "sk-wrong-0d9e8f7a6b"
    log_path = tmp_path / "sink.log"
    process = start_process(env, "sink", log_path)
    code = await asyncio.to_thread(process.wait, 60)
    output = log_path.read_text()
    assert code == 1
    last = output.strip().splitlines()[-1]
    assert last.startswith("cio-connector: error: no workspace is usable")
    assert "401" in last
    assert "sk-wrong-0d9e8f7a6b" not in output


async def _wait_ready(http: aiohttp.ClientSession, url: str) -> None:
    async def ready() -> bool:
        try:
            async with http.get(url) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    for _ in range(300):
        if await ready():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


async def _query(http: aiohttp.ClientSession, port: int, query: str) -> list[Any]:
    async with http.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}) as response:
        body = await response.json()
    assert body["status"] == "success", f"{query}: {body}"
    result: list[Any] = body["data"]["result"]
    return [r for r in result if r.get("value", [None, "NaN"])[1] not in ("NaN",)]
