"""Webhook settings: per-workspace signing keys in the config file, the event-name preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import _secret_values
from connector.config import load_settings
from connector.errors import ConfigError
from connector.webhook.listener import webhook_keys


def write(tmp_path: Path, text: str) -> str:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    return str(config)


def test_workspace_signing_keys_inline_from_env_and_from_file(tmp_path: Path) -> None:
    """Like the api keys: inline, ``_env`` (comma-separated, for rotation) or ``_file`` (one key per line)."""
    key_file = tmp_path / "eu.keys"
    key_file.write_text("eu-new\neu-old\n")
    config = write(
        tmp_path,
        f"""
workspaces:
  - {{name: us-brand, webhook_signing_keys: [us-a, us-b]}}
  - {{name: eu-brand, webhook_signing_keys_file: {key_file}}}
  - {{name: apac, webhook_signing_keys_env: APAC_KEYS}}
  - {{name: quiet}}
""",
    )
    settings = load_settings({"APAC_KEYS": "apac-1, apac-2"}, config, role="webhooks")
    keys = {name: [k.reveal() for k in ks] for name, ks in webhook_keys(settings).items()}
    assert keys == {"us-brand": ["us-a", "us-b"], "eu-brand": ["eu-new", "eu-old"], "apac": ["apac-1", "apac-2"]}
    text = repr(settings)
    for secret in ("us-a", "eu-new", "apac-1"):
        assert secret not in text
        assert secret in _secret_values(settings)  # redacted from logs like every other secret


def test_workspace_keys_alone_satisfy_the_webhook_listener(tmp_path: Path) -> None:
    """Without CIO_WEBHOOK_SIGNING_KEYS the listener may run on workspaces' keys alone; with neither, it may not."""
    config = write(tmp_path, "workspaces:\n  - {name: us-brand, webhook_signing_keys: us-a}\n")
    assert load_settings({}, config, role="webhooks").webhook.signing_keys == ()
    with pytest.raises(ConfigError) as caught:
        load_settings({}, write(tmp_path, "workspaces:\n  - {name: us-brand}\n"), role="webhooks")
    assert str(caught.value).startswith("CIO_WEBHOOK_SIGNING_KEYS: required")
    assert "webhook_signing_keys" in str(caught.value)


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ("{name: a, webhook_signing_keys_env: NOPE}", "workspaces[0].webhook_signing_keys_env"),
        ("{name: a, webhook_signing_keys_file: /nonexistent/keys}", "workspaces[0].webhook_signing_keys_file"),
        ("{name: a, webhook_signing_keys: {k: v}}", "workspaces[0].webhook_signing_keys"),
        ("{name: us/brand, webhook_signing_keys: k}", "workspaces[0].name"),
    ],
)
def test_bad_workspace_signing_keys_name_the_key(tmp_path: Path, item: str, key: str) -> None:
    """One line naming the workspace's key."""
    with pytest.raises(ConfigError) as caught:
        load_settings({}, write(tmp_path, f"workspaces:\n  - {item}\n"))
    assert str(caught.value).startswith(f"{key}:")


@pytest.mark.parametrize("path", ["webhooks", "/webhooks/{name}", "/hooks}"])
def test_a_webhook_path_that_is_not_a_plain_absolute_path_is_refused(path: str) -> None:
    """One line naming the setting, at start-up (exit 2), rather than a listener that never matches."""
    with pytest.raises(ConfigError) as caught:
        load_settings({"CONNECTOR_WEBHOOK_PATH": path})
    assert str(caught.value).startswith("CONNECTOR_WEBHOOK_PATH: must start with '/'")


def test_event_names_preset() -> None:
    """rudderstack by default; customerio on request; anything else is refused naming the variable."""
    assert load_settings({}).webhook.event_names == "rudderstack"
    assert load_settings({"CONNECTOR_WEBHOOK_EVENT_NAMES": "customerio"}).webhook.event_names == "customerio"
    with pytest.raises(ConfigError) as caught:
        load_settings({"CONNECTOR_WEBHOOK_EVENT_NAMES": "segment"})
    assert str(caught.value).startswith("CONNECTOR_WEBHOOK_EVENT_NAMES: must be one of rudderstack, customerio")
