"""Secured listeners for the local broker: a CA made on the spot, SCRAM users, mTLS and OAUTHBEARER.

``BrokerSecurity`` is handed to ``LocalKafka(security=...)``; the broker then listens, besides its
PLAINTEXT listener (inter-broker traffic and the other tests), on:

- ``SASL_SSL``: SASL over TLS with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. The SCRAM credentials are
  written into the metadata log when the storage is formatted (``kafka-storage format --add-scram``):
  KRaft has no other way to create them before the broker runs.
- ``MTLS``: TLS with a client certificate required (``ssl.client.auth=required``), signed by the same CA.
- ``OAUTH``: SASL_SSL with OAUTHBEARER, the token checked by the broker itself
  (``OAuthBearerValidatorCallbackHandler``) against the JWKS at ``jwks_url`` and the expected audience.
  Kafka 4 refuses to fetch a URL that the ``org.apache.kafka.sasl.oauthbearer.allowed.urls`` system
  property does not list, hence ``jvm_options()``.

Keys and certificates are made with the ``openssl`` command line (no Python dependency), in a directory
of the caller's: a CA, the broker's certificate (for 127.0.0.1 and localhost), a client certificate, and a
second, unrelated CA for "wrong CA" tests. Nothing here is fit for production: keys are not encrypted.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
LISTENERS = {"SASL_SSL": "SASL_SSL", "MTLS": "SSL", "OAUTH": "SASL_SSL"}
_OAUTH_VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
_DAYS = "2"


class PkiError(RuntimeError):
    """openssl is missing or failed."""


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise PkiError("openssl not found on PATH (needed to make test certificates)")
    result = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)  # noqa: S603
    if result.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")


@dataclass(frozen=True)
class Pki:
    """PEM files of a throw-away CA and what it signed (paths are absolute)."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def other_ca(self) -> Path:
        """A CA that signed nothing the broker presents: "wrong CA" tests."""
        return self.directory / "other-ca.pem"

    @property
    def broker_keystore(self) -> Path:
        """The broker's private key and certificate in one PEM file (Kafka's PEM keystore)."""
        return self.directory / "broker-keystore.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    @classmethod
    def create(cls, directory: Path) -> Pki:
        """Make a CA, the broker's and the client's certificates, and another CA, in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        pki = cls(directory.resolve())
        for name in ("ca", "other-ca"):
            _openssl(
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", _DAYS, "-subj", f"/CN=cio-connector test {name}",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=pki.directory,
            )  # fmt: skip
        pki._issue("broker", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost")
        pki._issue("client", "/CN=cio-connector-client", "extendedKeyUsage=clientAuth")
        # PKCS#8, unencrypted: what Kafka's PEM keystore reads.
        _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.p8", cwd=pki.directory)
        pki.broker_keystore.write_text(
            (pki.directory / "broker.p8").read_text() + (pki.directory / "broker.pem").read_text()
        )
        return pki

    def _issue(self, name: str, subject: str, extension: str) -> None:
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            cwd=self.directory,
        )  # fmt: skip
        # RFC 5280's leaf extensions, which Python 3.13's default VERIFY_X509_STRICT requires (an authority key
        # identifier above all): without them every TLS test fails there with "Missing Authority Key Identifier".
        leaf = "basicConstraints=critical,CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        (self.directory / f"{name}.ext").write_text(leaf + extension + "\n")
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", _DAYS, "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=self.directory,
        )  # fmt: skip


@dataclass(frozen=True)
class BrokerSecurity:
    """The secured listeners' configuration (see the module docstring); ``LocalKafka`` asks it for
    listener names, properties, storage-format arguments and JVM options."""

    pki: Pki
    users: Mapping[str, str] = field(default_factory=lambda: {"alice": "alice-secret"})
    jwks_url: str | None = None
    audience: str = "kafka"
    # With these principals (``alice``, ``CN=...`` of a certificate, an OAuth ``sub``), the broker runs
    # Kafka's StandardAuthorizer: they and the PLAINTEXT listener's ANONYMOUS may do anything, every other
    # principal nothing (no ACLs), for "not authorized" tests.
    super_users: tuple[str, ...] | None = None

    @property
    def listener_names(self) -> tuple[str, ...]:
        """Listener names (and so the keys of the ports passed to ``properties``)."""
        return tuple(name for name in LISTENERS if name != "OAUTH" or self.jwks_url)

    def protocol(self, listener: str) -> str:
        """The security protocol of a listener name."""
        return LISTENERS[listener]

    def properties(self) -> dict[str, str]:
        """Broker properties of the secured listeners (merged into ``server.properties``)."""
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in self.users.items())
        props = {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.pki.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki.ca),
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": ",".join(("PLAIN", *SCRAM_MECHANISMS)),
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
        }
        for mechanism in SCRAM_MECHANISMS:
            props[f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        if self.super_users is not None:
            props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            props["super.users"] = ";".join(f"User:{name}" for name in ("ANONYMOUS", *self.super_users))
        if self.jwks_url:
            props |= {
                "listener.name.oauth.sasl.enabled.mechanisms": "OAUTHBEARER",
                "listener.name.oauth.oauthbearer.sasl.jaas.config": (
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
                ),
                "listener.name.oauth.oauthbearer.sasl.server.callback.handler.class": _OAUTH_VALIDATOR,
                "sasl.oauthbearer.jwks.endpoint.url": self.jwks_url,
                "sasl.oauthbearer.expected.audience": self.audience,
            }
        return props

    def format_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create the SCRAM users."""
        args: list[str] = []
        for mechanism in SCRAM_MECHANISMS:
            for name, password in self.users.items():
                args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return args

    def jvm_options(self) -> list[str]:
        """System properties the broker's JVM needs (the JWKS URL must be allowed explicitly)."""
        return [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self.jwks_url}"] if self.jwks_url else []


_RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4}
_OPERATIONS = {"read": 3, "write": 4, "create": 5, "describe": 8, "idempotent_write": 12}


async def grant(bootstrap: str, principal: str, resource: str, name: str, operation: str) -> None:
    """Allow ``User:principal`` one operation on one resource (literal name), through ``bootstrap`` (the
    PLAINTEXT listener, whose ANONYMOUS is a super user): the CreateAcls request, as ``kafka-acls`` sends it."""
    import aiokafka.conn
    from aiokafka.protocol.admin import CreateAclsRequest

    host, _, port = bootstrap.rpartition(":")
    conn = await aiokafka.conn.create_conn(host, int(port))
    try:
        literal, allow = 3, 3
        request = CreateAclsRequest(
            _RESOURCE_TYPES[resource], name, literal, f"User:{principal}", "*", _OPERATIONS[operation], allow
        )
        response = await conn.send(request)
    finally:
        conn.close()
    [(error_code, message)] = response.creation_responses
    if error_code:
        raise RuntimeError(f"CreateAcls failed: {error_code} {message}")
