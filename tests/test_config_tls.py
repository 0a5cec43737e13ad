"""TLS files that cannot be used are a configuration error at start-up: one line naming the setting, exit 2.

Before, OpenSSL's own error ("PEM lib (_ssl.c:3926)", or an OSError for an encrypted key) escaped as a
traceback when the first Kafka client was built.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import load_settings
from connector.devtools.kafka_security import Pki
from connector.errors import ConfigError

BASE = {
    "CIO_SITE_ID": "site",
    "CIO_API_KEY": "track-secret-123",
    "CONNECTOR_INPUT_TOPICS": "events",
    "KAFKA_SECURITY_PROTOCOL": "SSL",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a client certificate and key, plus an encrypted copy of the key and a file that is no PEM."""
    made = Pki.create(tmp_path_factory.mktemp("pki"))
    encrypted = str(made.directory / "encrypted.key")
    subprocess.run(
        ["openssl", "pkey", "-in", str(made.client_key), "-aes256", "-passout", "pass:hunter2", "-out", encrypted],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (made.directory / "notes.txt").write_text("not a certificate\n")
    return made


def mtls(pki: Pki, **changes: str) -> dict[str, str]:
    env = {
        **BASE,
        "KAFKA_SSL_CAFILE": str(pki.ca),
        "KAFKA_SSL_CERTFILE": str(pki.client_cert),
        "KAFKA_SSL_KEYFILE": str(pki.client_key),
        **changes,
    }
    return {key: value for key, value in env.items() if value}


def test_good_tls_files_load(pki: Pki) -> None:
    """The CA, certificate and key of a working mTLS set-up pass."""
    settings = load_settings(mtls(pki), role="sink")
    assert settings.kafka.ssl_keyfile == str(pki.client_key)


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({"KAFKA_SSL_CAFILE": "notes.txt"}, "KAFKA_SSL_CAFILE: {dir}/notes.txt holds no PEM certificate"),
        ({"KAFKA_SSL_CAFILE": "ca.key"}, "KAFKA_SSL_CAFILE: {dir}/ca.key holds no PEM certificate"),
        (
            {"KAFKA_SSL_CERTFILE": "client.key", "KAFKA_SSL_KEYFILE": ""},
            "KAFKA_SSL_CERTFILE: {dir}/client.key holds no PEM certificate",
        ),
        (
            {"KAFKA_SSL_KEYFILE": ""},
            "KAFKA_SSL_KEYFILE: required: {dir}/client.pem holds no private key next to the certificate",
        ),
        ({"KAFKA_SSL_KEYFILE": "notes.txt"}, "KAFKA_SSL_KEYFILE: {dir}/notes.txt holds no PEM private key"),
        (
            {"KAFKA_SSL_KEYFILE": "ca.key"},
            "KAFKA_SSL_KEYFILE: the private key does not belong to the certificate in KAFKA_SSL_CERTFILE",
        ),
        (
            {"KAFKA_SSL_KEYFILE": "encrypted.key"},
            "KAFKA_SSL_KEYFILE: the private key is encrypted (has a passphrase), which is not supported: "
            "decrypt it (openssl pkey -in KEY -out KEY.plain)",
        ),
    ],
)
def test_unusable_tls_file_names_the_setting(pki: Pki, changes: dict[str, str], line: str) -> None:
    """A CA that is no PEM, a certificate without its key, a foreign or encrypted key: one line each."""
    paths = {key: str(pki.directory / value) if value else "" for key, value in changes.items()}
    with pytest.raises(ConfigError) as caught:
        load_settings(mtls(pki, **paths), role="sink")
    assert str(caught.value) == line.format(dir=pki.directory)


def test_tls_files_are_not_checked_without_tls(pki: Pki) -> None:
    """PLAINTEXT never loads them, so a leftover setting is not an error."""
    env = mtls(pki, KAFKA_SECURITY_PROTOCOL="PLAINTEXT", KAFKA_SSL_CAFILE=str(pki.directory / "notes.txt"))
    assert load_settings(env, role="sink").kafka.security_protocol == "PLAINTEXT"


def test_cli_exits_2_for_an_encrypted_key(pki: Pki) -> None:
    """`cio-connector check` with a passphrase-protected key: exit 2, one line, no prompt, no traceback."""
    env = {**mtls(pki, KAFKA_SSL_KEYFILE=str(pki.directory / "encrypted.key")), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "connector", "check"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.endswith(
        "KAFKA_SSL_KEYFILE: the private key is encrypted (has a passphrase), which is not supported: "
        "decrypt it (openssl pkey -in KEY -out KEY.plain)"
    )
