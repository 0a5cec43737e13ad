"""Settings: one-line errors naming the key, secrets never shown, docs generated from declarations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector.config import load_settings, markdown_table
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BASE = {"CIO_SITE_ID": "site", "CIO_API_KEY": "track-secret-123", "CONNECTOR_INPUT_TOPICS": "events"}


@pytest.mark.parametrize(
    ("env", "key", "words"),
    [
        ({"CIO_REGION": "mars"}, "CIO_REGION", "must be one of us, eu, auto"),
        ({"CONNECTOR_LINGER_SECONDS": "soon"}, "CONNECTOR_LINGER_SECONDS", "must be a number"),
        ({"CONNECTOR_LINGER_SECONDS": "0"}, "CONNECTOR_LINGER_SECONDS", "must be > 0"),
        ({"CONNECTOR_BATCH_MAX_BYTES": "600000"}, "CONNECTOR_BATCH_MAX_BYTES", "≤ 499000"),
        ({"CONNECTOR_WEBHOOK_PORT": "http"}, "CONNECTOR_WEBHOOK_PORT", "must be an integer"),
        ({"CONNECTOR_OMIT_EMPTY_VALUES": "perhaps"}, "CONNECTOR_OMIT_EMPTY_VALUES", "true or false"),
        ({"CONNECTOR_DLQ_CONNECT_HEADERS": "connect"}, "CONNECTOR_DLQ_CONNECT_HEADERS", "true or false"),
        ({"CIO_TRACK_URL_EU": "track-eu.customer.io"}, "CIO_TRACK_URL_EU", "http(s) URL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM", "needs a mechanism"),
        ({"CONNECTOR_INPUT_TOPICS": ""}, "CONNECTOR_INPUT_TOPICS", "required"),
        ({"CIO_API_KEY": ""}, "CIO_API_KEY", "required"),
        ({"CONNECTOR_FETCH_BUDGET_BYTES": "65536"}, "CONNECTOR_FETCH_BUDGET_BYTES", "must be ≥ 1048576"),
        ({"CONNECTOR_FETCH_BUDGET_BYTES": "16MiB"}, "CONNECTOR_FETCH_BUDGET_BYTES", "must be an integer"),
        ({"CIO_TRACK_URL_US": "http://u:hunter2@127.0.0.1:1"}, "CIO_TRACK_URL_US", "must not hold credentials"),
        ({"CIO_APP_URL_EU": "https://u:hunter2@api"}, "CIO_APP_URL_EU", "must not hold credentials"),
        ({"CIO_APP_URL_US": "u:hunter2@api"}, "CIO_APP_URL_US", "http(s) URL"),
        ({"CONNECTOR_SCHEMA_REGISTRY_URL": "registry:8081"}, "CONNECTOR_SCHEMA_REGISTRY_URL", "http(s) URL"),
        (
            {"CONNECTOR_SCHEMA_REGISTRY_URL": "https://u:hunter2@registry"},
            "CONNECTOR_SCHEMA_REGISTRY_URL",
            "must not hold credentials",
        ),
        (
            {"CONNECTOR_SCHEMA_REGISTRY_USERNAME": "u"},
            "CONNECTOR_SCHEMA_REGISTRY_PASSWORD",
            "basic auth needs both",
        ),
        ({"CONNECTOR_SCHEMA_REGISTRY_CA_FILE": "/nonexistent.pem"}, "CONNECTOR_SCHEMA_REGISTRY_CA_FILE", "cannot read"),
        ({"CONNECTOR_SCHEMA_REGISTRY_CACHE_SIZE": "0"}, "CONNECTOR_SCHEMA_REGISTRY_CACHE_SIZE", "must be ≥ 1"),
    ],
)
def test_invalid_setting_names_the_key(env: dict[str, str], key: str, words: str) -> None:
    """Each bad value is reported as one line that starts with the variable's name."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**BASE, **env}, role="sink")
    message = str(caught.value)
    assert message.startswith(f"{key}: ")
    assert words in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_region_error_wins_over_missing_credentials() -> None:
    """`CIO_REGION=mars` alone reports the region, not the missing site id."""
    with pytest.raises(ConfigError, match=r"^CIO_REGION: "):
        load_settings({"CIO_REGION": "mars"}, role="sink")


def test_cli_exits_2_with_one_line_for_a_read_ahead_budget_below_one_mib() -> None:
    """`CONNECTOR_FETCH_BUDGET_BYTES=1000 cio-connector sink` exits 2 with one line naming the setting."""
    env = {**BASE, "CONNECTOR_FETCH_BUDGET_BYTES": "1000", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "connector", "sink"], env=env, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.endswith("CONNECTOR_FETCH_BUDGET_BYTES: must be ≥ 1048576 (got 1000)")


def test_cli_exits_2_with_one_line_for_bad_region() -> None:
    """`CIO_REGION=mars cio-connector sink` exits 2 with one line naming CIO_REGION."""
    result = subprocess.run(
        [sys.executable, "-m", "connector", "sink"],
        env={"CIO_REGION": "mars", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "CIO_REGION" in lines[0]


def test_help_lists_every_subcommand() -> None:
    """`cio-connector --help` lists run, sink, webhooks, check, fake-cio."""
    result = subprocess.run(
        [sys.executable, "-m", "connector", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    for command in ("run", "sink", "webhooks", "check", "fake-cio", "dlq"):
        assert command in result.stdout


def test_secrets_are_redacted_in_repr() -> None:
    """Neither repr nor str of the settings shows a key."""
    settings = load_settings(
        {
            **BASE,
            "CIO_APP_API_KEY": "app-secret-456",
            "CIO_WEBHOOK_SIGNING_KEYS": "sign-secret-789,sign-old-000",
            "CONNECTOR_SCHEMA_REGISTRY_USERNAME": "reader",
            "CONNECTOR_SCHEMA_REGISTRY_PASSWORD": "registry-secret-321",
        },
        role="run",
    )
    text = repr(settings) + str(settings)
    for secret in ("track-secret-123", "app-secret-456", "sign-secret-789", "sign-old-000", "registry-secret-321"):
        assert secret not in text
    assert [k.reveal() for k in settings.webhook.signing_keys] == ["sign-secret-789", "sign-old-000"]


def test_yaml_workspaces_with_secret_references(tmp_path: Path) -> None:
    """Workspaces come from YAML; keys by env reference or file, env overrides scalar settings."""
    key_file = tmp_path / "eu.key"
    key_file.write_text("eu-secret\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
sink:
  input_topics: [a, b]
  linger_seconds: 0.5
workspaces:
  - name: us-brand
    site_id: s1
    api_key_env: US_KEY
    region: us
    topics: [a]
  - name: eu-brand
    site_id: s2
    api_key_file: {key_file}
    region: eu
routes:
  - event: Campaign Joined
    workspace: eu-brand
    attribute_prefix: camp_
"""
    )
    settings = load_settings({"US_KEY": "us-secret", "CONNECTOR_LINGER_SECONDS": "2"}, str(config), role="sink")
    assert [ws.name for ws in settings.workspaces] == ["us-brand", "eu-brand"]
    assert settings.workspace("eu-brand").api_key is not None
    assert settings.workspace("eu-brand").api_key.reveal() == "eu-secret"  # type: ignore[union-attr]
    assert settings.sink.linger_seconds == 2.0
    assert settings.routes[0].attribute_prefix == "camp_"


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("sink: [1]", "sink"),
        ("bogus: 1", "bogus"),
        ("sink:\n  lingr_seconds: 1", "sink.lingr_seconds"),
        ("workspaces:\n  - site_id: x", "workspaces[0].name"),
        ("workspaces:\n  - {name: a, site_id: s, api_key_env: NOPE}", "workspaces[0].api_key_env"),
        ("routes:\n  - workspace: a", "routes[0]"),
        ("topics: [a]", "topics"),
        ("topics:\n  a: [x]", "topics.a"),
        ("topics:\n  a: {header_workspace: [x]}", "topics.a.header_workspace"),
        ("workspaces:\n  - {name: x}\ntopics:\n  a: {header_workspaces: [x, mars]}", "topics.a.header_workspaces"),
        ("sink: {input_topics: [a]\n", "CONNECTOR_CONFIG"),
    ],
)
def test_yaml_errors_name_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    """Problems in the file are reported with the path of the offending key."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_settings({}, str(config))
    assert str(caught.value).startswith(f"{key}:")


def test_yaml_topics_list_the_workspaces_their_header_may_name(tmp_path: Path) -> None:
    """`topics.<topic>.header_workspaces` is read per topic; the header itself stays off unless set."""
    config = tmp_path / "c.yaml"
    config.write_text(
        """
workspaces:
  - {name: us-brand, site_id: s1}
  - {name: eu-brand, site_id: s2}
topics:
  shared: {header_workspaces: [us-brand, eu-brand]}
  2024: {header_workspaces: [eu-brand]}
  quiet:
"""
    )
    settings = load_settings({}, str(config))
    assert settings.sink.workspace_header == ""
    assert {t.name: t.header_workspaces for t in settings.topics} == {
        "shared": ("us-brand", "eu-brand"),
        "2024": ("eu-brand",),
        "quiet": (),
    }
    assert load_settings({"CONNECTOR_WORKSPACE_HEADER": "cio-workspace"}, str(config)).sink.workspace_header == (
        "cio-workspace"
    )


def test_readme_configuration_table_matches_declarations() -> None:
    """The README's table is exactly the generated one (python -m connector.config --markdown)."""
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme
