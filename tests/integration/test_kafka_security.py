"""Every security mode against the real broker: one broker with SASL_SSL (PLAIN, SCRAM), mTLS and OAUTHBEARER
listeners (``kafka_security``), a CA made for the module, and a fake OIDC provider whose JWKS the broker
itself checks tokens against.

Per mode: the sink delivers to the fake Customer.io, the webhook listener produces, dead letters are
replayed and ``check`` reports Kafka. Bad credentials exit 1 with a last line naming the setting and the
reason, never the secret.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest

from connector.check import run_check
from connector.config import load_settings
from connector.devtools.fake_oidc import FakeOidc
from connector.devtools.kafka_local import LocalKafka
from connector.devtools.kafka_security import BrokerSecurity, Pki, grant
from connector.dlq_replay import replay
from connector.fake_cio.server import FakeCustomerIO
from connector.kafka import ensure_topics
from connector.metrics import Metrics
from tests.integration.harness import DEMO, ROOT, connector_env, free_port, produce, read_all, running, wait_for
from tests.webhook.cio_payloads import SIGNING_KEY, signed, webhook

PASSWORD = "alice-secret"
BOB_PASSWORD = "bob-secret"  # a user without any ACL
CLIENT_SECRET = "oidc-client-secret-42"
MODES = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "mTLS", "OAUTHBEARER")


@dataclass
class Secured:
    kafka: LocalKafka
    pki: Pki
    idp: FakeOidc

    def env(self, mode: str) -> dict[str, str]:
        """The connector's Kafka settings for one mode, as environment variables."""
        ca = str(self.pki.ca)
        if mode == "mTLS":
            return {
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka.listener_bootstrap("MTLS"),
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CAFILE": ca,
                "KAFKA_SSL_CERTFILE": str(self.pki.client_cert),
                "KAFKA_SSL_KEYFILE": str(self.pki.client_key),
            }
        if mode == "OAUTHBEARER":
            return {
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka.listener_bootstrap("OAUTH"),
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SSL_CAFILE": ca,
                "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "KAFKA_SASL_OAUTH_TOKEN_URL": self.idp.token_url,
                "KAFKA_SASL_OAUTH_CLIENT_ID": "connector",
                "KAFKA_SASL_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
                "KAFKA_SASL_OAUTH_SCOPE": "kafka",
                "KAFKA_SASL_OAUTH_EXTENSIONS": "logicalCluster=lkc-1,identityPoolId=pool-2",
            }
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.listener_bootstrap("SASL_SSL"),
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SSL_CAFILE": ca,
            "KAFKA_SASL_MECHANISM": mode,
            "KAFKA_SASL_USERNAME": "alice",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        }


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    """One broker with every secured listener, for the whole module (a broker start costs seconds)."""
    with tempfile.TemporaryDirectory(prefix="kafka-security-") as tmp:
        pki = Pki.create(Path(tmp) / "pki")
        with FakeOidc(Path(tmp) / "oidc", {"connector": CLIENT_SECRET}) as idp:
            security = BrokerSecurity(
                pki,
                users={"alice": PASSWORD, "bob": BOB_PASSWORD, "carol": BOB_PASSWORD},
                jwks_url=idp.jwks_url,
                super_users=("alice", "CN=cio-connector-client", "connector"),  # bob, carol: no ACLs
            )
            kafka = LocalKafka(security=security)
            try:
                kafka.start()
                yield Secured(kafka, pki, idp)
            finally:
                kafka.close()


@pytest.fixture
def idp(secured: Secured) -> Iterator[FakeOidc]:
    """The provider, its knobs restored after the test."""
    yield secured.idp
    secured.idp.audience, secured.idp.lifetime_seconds, secured.idp.failures_to_serve = "kafka", 300, 0
    secured.idp.clients = {"connector": CLIENT_SECRET}


def identify(user: str) -> bytes:
    return orjson.dumps({"type": "identify", "userId": user, "messageId": f"m-{user}", "traits": {"plan": "pro"}})


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
async def test_sink_webhooks_dlq_replay_and_check_through_each_mode(secured: Secured, mode: str) -> None:
    """Through the mode's listener: a record reaches Customer.io, a bad one the DLQ, a webhook its topic;
    the dead letter is replayed; check reports every Kafka row ok."""
    suffix = uuid.uuid4().hex[:8]
    topic, dlq, hooks, replayed = (f"{name}-{suffix}" for name in ("events", "dlq", "hooks", "replayed"))
    webhook_port = free_port()
    async with FakeCustomerIO([DEMO]) as fake:
        env = connector_env(
            "unused",
            fake,
            [topic],
            dlq,
            **secured.env(mode),
            CIO_WEBHOOK_SIGNING_KEYS=SIGNING_KEY,
            CONNECTOR_WEBHOOK_PORT=str(webhook_port),
            CONNECTOR_WEBHOOK_HOST="127.0.0.1",
            CONNECTOR_WEBHOOK_TOPIC=hooks,
        )
        settings = load_settings(env, role="run")
        await ensure_topics(settings.kafka, {topic: 1, dlq: 1, hooks: 1, replayed: 1})
        await produce(settings.kafka, topic, [(b"u1", identify("u1")), (b"u2", b"{not json")])
        async with running(settings, role="run"):
            await wait_for(lambda: len(fake.state.operations_for("demo")) >= 1, 60, "the delivery")
            body, headers = signed(webhook("email", "delivered", event_id=f"evt-{suffix}"), timestamp=int(time.time()))
            url = f"http://127.0.0.1:{webhook_port}{settings.webhook.path}"
            async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as response:
                assert response.status == 200
            assert len(await read_all(settings.kafka, hooks, expect=1, timeout=60)) == 1
            assert len(await read_all(settings.kafka, dlq, expect=1, timeout=60)) == 1
        [operation] = fake.state.operations_for("demo")
        assert operation["operation"]["identifiers"] == {"id": "u1"}

        args = argparse.Namespace(to_topic=replayed, reason=None, limit=None, group=f"replay-{suffix}", dry_run=False)
        assert await replay(settings, args, io.StringIO()) == 0
        [again] = await read_all(settings.kafka, replayed, expect=1, timeout=60)
        assert again.value == b"{not json"

        out = io.StringIO()
        assert await run_check(settings, Metrics(), out, kafka=True) == 0, out.getvalue()
        kafka_rows = out.getvalue().split("\n\n")[1].splitlines()
        assert kafka_rows[0].split() == ["KAFKA", "STATUS"]
        assert [row.rsplit(maxsplit=1) for row in kafka_rows[1:]] == [
            [f"connect ({settings.kafka.security_protocol}{', ' + mode if mode != 'mTLS' else ''})", "ok"],
            [f"read {topic} (group {settings.sink.group_id})", "ok"],
            [f"write {dlq}", "ok"],
            [f"write {hooks}", "ok"],
        ]
        assert all(secret not in out.getvalue() for secret in (PASSWORD, CLIENT_SECRET))


def run_cli(env: dict[str, str], command: str = "webhooks") -> tuple[int, str]:
    """``cio-connector <command>`` as a process; (exit code, stderr)."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **env}
    result = subprocess.run(
        [sys.executable, "-m", "connector", command],
        check=False,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    return result.returncode, result.stdout + result.stderr


def webhook_env(secured: Secured, mode: str, **changes: str) -> dict[str, str]:
    return {
        **secured.env(mode),
        "CIO_WEBHOOK_SIGNING_KEYS": SIGNING_KEY,
        "CONNECTOR_WEBHOOK_PORT": str(free_port()),
        "CONNECTOR_METRICS_PORT": str(free_port()),
        **changes,
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    ("mode", "change", "last_line"),
    [
        (
            "SCRAM-SHA-512",
            {"KAFKA_SASL_PASSWORD": "wrong-password-1"},
            "KAFKA_SASL_PASSWORD: SASL authentication failed (SCRAM-SHA-512)",
        ),
        ("SCRAM-SHA-512", {"CA": "other"}, "KAFKA_SSL_CAFILE: TLS: the broker's certificate is not trusted"),
        ("mTLS", {"KAFKA_SSL_CERTFILE": "", "KAFKA_SSL_KEYFILE": ""}, "KAFKA_SSL_CERTFILE: TLS: the broker requires"),
        (
            "OAUTHBEARER",
            {"KAFKA_SASL_OAUTH_CLIENT_SECRET": "wrong-secret-77"},
            "KAFKA_SASL_OAUTH_CLIENT_SECRET: the token endpoint rejected the client id or secret (401 invalid_client)",
        ),
        ("OAUTHBEARER", {"IDP": "expired"}, "KAFKA_SASL_OAUTH_CLIENT_ID: SASL authentication failed (OAUTHBEARER)"),
        ("OAUTHBEARER", {"IDP": "audience"}, "KAFKA_SASL_OAUTH_CLIENT_ID: SASL authentication failed (OAUTHBEARER)"),
    ],
)
def test_bad_credentials_exit_1_naming_the_setting(
    secured: Secured, idp: FakeOidc, mode: str, change: dict[str, str], last_line: str
) -> None:
    """Wrong password, wrong CA, no client certificate, rejected client secret, expired or foreign token:
    exit 1, and the last line names the setting and the reason, without any secret."""
    changes = dict(change)
    if changes.pop("CA", None):
        changes["KAFKA_SSL_CAFILE"] = str(secured.pki.other_ca)
    knob = changes.pop("IDP", None)
    if knob == "expired":
        idp.lifetime_seconds = -120
    elif knob == "audience":
        idp.audience = "someone-else"
    code, output = run_cli(webhook_env(secured, mode, **changes))
    last = output.strip().splitlines()[-1]
    assert code == 1, output
    assert last.startswith(f"cio-connector: error: {last_line}"), output
    for secret in (PASSWORD, CLIENT_SECRET, "wrong-password-1", "wrong-secret-77"):
        assert secret not in output


def bob_env(secured: Secured, **changes: str) -> dict[str, str]:
    """SCRAM-SHA-512 as bob, who has only the ACLs a test grants him."""
    return webhook_env(secured, "SCRAM-SHA-512", KAFKA_SASL_USERNAME="bob", KAFKA_SASL_PASSWORD=BOB_PASSWORD, **changes)


@pytest.mark.integration
async def test_an_output_topic_the_credentials_cannot_create_stops_the_start_naming_it(secured: Secured) -> None:
    """bob may write to the webhook topic but not create it, and it does not exist: exit 1 naming
    CONNECTOR_WEBHOOK_TOPIC. (Before: "Service started", ready, and every webhook answered 503 while
    aiokafka logged "Topic ... not found in cluster metadata" ten times a second.)"""
    topic = f"hooks-{uuid.uuid4().hex[:8]}"
    for operation in ("write", "describe"):
        await grant(secured.kafka.bootstrap, "bob", "topic", topic, operation)
    code, output = run_cli(bob_env(secured, CONNECTOR_WEBHOOK_TOPIC=topic))
    assert code == 1, output
    assert output.strip().splitlines()[-1] == (
        f"cio-connector: error: CONNECTOR_WEBHOOK_TOPIC: topic {topic} does not exist and could not be created "
        "(TopicAuthorizationFailedError: Authorization failed.); create it, or allow these credentials to (Create ACL)"
    ), output


@pytest.mark.integration
def test_credentials_without_any_acl_are_told_what_to_allow(secured: Secured) -> None:
    """carol has no ACL at all, so the idempotent producer cannot start: exit 1 naming the user's setting and
    the ACL to add. (Before: "KAFKA_BOOTSTRAP_SERVERS: cannot connect to Kafka: [Error 31] ...".)"""
    code, output = run_cli(
        webhook_env(secured, "SCRAM-SHA-512", KAFKA_SASL_USERNAME="carol", KAFKA_SASL_PASSWORD=BOB_PASSWORD)
    )
    assert code == 1, output
    assert output.strip().splitlines()[-1] == (
        "cio-connector: error: KAFKA_SASL_USERNAME: these credentials may not produce "
        "(ClusterAuthorizationFailedError): allow them Write on the output topics (or IdempotentWrite on the cluster)"
    ), output


@pytest.mark.integration
@pytest.mark.parametrize(
    ("granted", "last_line"),
    [
        (
            ("topic", "read"),
            "CONNECTOR_GROUP_ID: these credentials may not use consumer group {group} "
            "(GroupAuthorizationFailedError): allow them Read on it",
        ),
        (
            ("group", "read"),
            "CONNECTOR_INPUT_TOPICS: these credentials may not read topic {topic} "
            "(TopicAuthorizationFailedError): allow them Describe and Read",
        ),
    ],
)
async def test_a_missing_read_acl_names_the_group_or_topic(
    secured: Secured, granted: tuple[str, str], last_line: str
) -> None:
    """The sink as bob, allowed to write its dead-letter topic but lacking Read on the group or on the input
    topic: exit 1 naming CONNECTOR_GROUP_ID or CONNECTOR_INPUT_TOPICS."""
    suffix = uuid.uuid4().hex[:8]
    topic, dlq, group = f"events-{suffix}", f"dlq-{suffix}", f"group-{suffix}"
    admin = load_settings({"KAFKA_BOOTSTRAP_SERVERS": secured.kafka.bootstrap})
    await ensure_topics(admin.kafka, {topic: 1, dlq: 1})
    for operation in ("write", "describe"):
        await grant(secured.kafka.bootstrap, "bob", "topic", dlq, operation)
    resource, operation = granted
    await grant(secured.kafka.bootstrap, "bob", resource, topic if resource == "topic" else group, operation)
    async with FakeCustomerIO([DEMO]) as fake:
        env = connector_env(
            "unused",
            fake,
            [topic],
            dlq,
            **{**secured.env("SCRAM-SHA-512"), "KAFKA_SASL_USERNAME": "bob", "KAFKA_SASL_PASSWORD": BOB_PASSWORD},
        )
        env["CONNECTOR_GROUP_ID"] = group
        code, output = await asyncio.to_thread(run_cli, env, "sink")
    assert code == 1, output
    assert output.strip().splitlines()[-1] == "cio-connector: error: " + last_line.format(group=group, topic=topic), (
        output
    )


@pytest.mark.integration
async def test_check_says_a_missing_output_topic_is_created_at_start_up(secured: Secured) -> None:
    """docs/kafka.md: 'A missing output topic is reported as "created at start-up"' (it read plain "ok")."""
    suffix = uuid.uuid4().hex[:8]
    topic, dlq = f"events-{suffix}", f"dlq-{suffix}"
    async with FakeCustomerIO([DEMO]) as fake:
        settings = load_settings(connector_env("unused", fake, [topic], dlq, **secured.env("PLAIN")), role="check")
        await ensure_topics(settings.kafka, {topic: 1})
        out = io.StringIO()
        assert await run_check(settings, Metrics(), out, kafka=True) == 0, out.getvalue()
    rows = dict(row.split(maxsplit=2)[1:] for row in out.getvalue().splitlines() if row.startswith("write "))
    assert rows[dlq] == "ok (missing; created at start-up)", out.getvalue()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("mode", "listener", "last_line"),
    [
        ("mTLS", "PLAINTEXT", "KAFKA_SECURITY_PROTOCOL: {where} closed the connection during the TLS handshake"),
        ("SCRAM-SHA-512", "PLAINTEXT", "KAFKA_SECURITY_PROTOCOL: {where} closed the connection during the TLS"),
        ("mTLS", "SASL_SSL", "KAFKA_SECURITY_PROTOCOL: {where} closed the connection (does it expect SASL_SSL?)"),
    ],
)
def test_a_security_protocol_the_listener_does_not_speak_is_named(
    secured: Secured, mode: str, listener: str, last_line: str
) -> None:
    """TLS to a PLAINTEXT listener, or SSL to a SASL_SSL one: exit 1 naming KAFKA_SECURITY_PROTOCOL
    (before: 'KAFKA_BOOTSTRAP_SERVERS: cannot connect to ... (connectionreseterror)')."""
    where = secured.kafka.bootstrap if listener == "PLAINTEXT" else secured.kafka.listener_bootstrap(listener)
    code, output = run_cli(webhook_env(secured, mode, KAFKA_BOOTSTRAP_SERVERS=where))
    assert code == 1, output
    assert output.strip().splitlines()[-1].startswith("cio-connector: error: " + last_line.format(where=where)), output


@pytest.mark.integration
async def test_dead_letters_the_credentials_may_not_write_make_the_sink_not_ready_until_allowed(
    secured: Secured,
) -> None:
    """bob may read the input but not write the dead-letter topic: the bad record is retried (not committed,
    not dropped) and /readyz names the topic; once Write is granted it is written and /readyz is ready."""
    suffix = uuid.uuid4().hex[:8]
    topic, dlq, group = f"events-{suffix}", f"dlq-{suffix}", f"group-dlq-{suffix}"
    admin = load_settings({"KAFKA_BOOTSTRAP_SERVERS": secured.kafka.bootstrap})
    await ensure_topics(admin.kafka, {topic: 1, dlq: 1})
    bootstrap = secured.kafka.bootstrap
    await grant(bootstrap, "bob", "topic", dlq, "describe")
    await grant(bootstrap, "bob", "topic", f"unused-{suffix}", "write")  # the idempotent producer needs one Write
    for resource, name in (("topic", topic), ("group", group)):
        await grant(bootstrap, "bob", resource, name, "read")
    async with FakeCustomerIO([DEMO]) as fake:
        kafka_env = {**secured.env("SCRAM-SHA-512"), "KAFKA_SASL_USERNAME": "bob", "KAFKA_SASL_PASSWORD": BOB_PASSWORD}
        settings = load_settings(connector_env("unused", fake, [topic], dlq, **kafka_env), role="sink")
        async with running(settings, role="sink") as connector:
            await produce(admin.kafka, topic, [(b"u1", b"{not json")])
            deadline = time.monotonic() + 120
            while True:
                status, body = await connector.readyz()
                if status == 503:
                    break
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.5)
            check = body["checks"]["dead_letters"]
            assert check["ready"] is False
            assert check["detail"].startswith(f"cannot write to {dlq} (CONNECTOR_DLQ_TOPIC), retrying: "), check
            assert "TopicAuthorizationFailedError" in check["detail"], check

            await grant(bootstrap, "bob", "topic", dlq, "write")
            [letter] = await read_all(admin.kafka, dlq, expect=1, timeout=120)
            assert letter.value == b"{not json"
            deadline = time.monotonic() + 60
            while (await connector.readyz())[0] != 200:
                assert time.monotonic() < deadline, await connector.readyz()
                await asyncio.sleep(0.5)
