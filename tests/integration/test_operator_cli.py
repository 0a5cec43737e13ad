"""The offline operator commands through the real command line: validate, map, completion, --help, bad input.

None of them needs Kafka or Customer.io: these tests start neither.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.cli import build_parser
from connector.completion import commands
from tests.integration.harness import run_cli

SECRET = "sk-live-4f9c2b7d1e"  # never printed, whatever the command
SINK_ENV = {"CIO_SITE_ID": "site-1", "CIO_API_KEY": SECRET, "CONNECTOR_INPUT_TOPICS": "events"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "connector.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def mapped(stdout: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [orjson.loads(line) for line in stdout.splitlines()]
    return lines


# --- validate ---------------------------------------------------------------------------------------


def test_validate_warns_about_misspelt_variables_and_suggests_the_right_name() -> None:
    env = {**SINK_ENV, "CONNECTOR_INPUT_TOPIC": "x", "CONNECTOR_BATCH_MAX_OPS": "3", "KAFKA_BOOTSTRAP_SERVER": "b:9092"}
    result = run_cli(env, "validate")
    assert result.returncode == 0, result.stdout + result.stderr  # warnings only
    out = result.stdout
    assert (
        "warning: CONNECTOR_BATCH_MAX_OPS: unknown variable, ignored (did you mean CONNECTOR_BATCH_MAX_OPERATIONS?)"
        in out
    )
    assert "warning: CONNECTOR_INPUT_TOPIC: unknown variable, ignored (did you mean CONNECTOR_INPUT_TOPICS?)" in out
    assert "KAFKA_BOOTSTRAP_SERVER: unknown variable, ignored (did you mean KAFKA_BOOTSTRAP_SERVERS?)" in out
    assert "role sink: ok" in out
    assert SECRET not in out + result.stderr


def test_validate_knows_every_variable_the_connector_reads(tmp_path: Path) -> None:
    """Declared settings, LOG_*, the YAML's api_key_env names and the tools' own variables are not 'unknown'."""
    from connector.config import documented_settings

    config = write(tmp_path, "workspaces:\n  - name: shop\n    site_id: s\n    api_key_env: CIO_SHOP_KEY\n")
    env = {name: "" for name, _, _ in documented_settings()}
    env |= {
        "CIO_SHOP_KEY": SECRET,
        "CIO_CONNECTOR_CACHE": str(tmp_path),
        "LOG_FORMAT": "json",
        "CONNECTOR_CONFIG": config,
    }
    result = run_cli(env, "validate")
    assert "unknown variable" not in result.stdout, result.stdout


def test_validate_lists_every_unknown_config_key_with_a_suggestion(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "sink:\n  batch_max_ops: 3\nroutes:\n  - topic: events\n    workspac: default\nworkspace: {}\n",
    )
    result = run_cli(SINK_ENV, "validate", "--config", config)
    assert result.returncode == 2
    out = result.stdout
    assert "error: sink.batch_max_ops: unknown setting (did you mean 'batch_max_operations'?)" in out
    assert "error: routes[0].workspac: unknown setting (did you mean 'workspace'?)" in out
    assert "error: workspace: unknown top-level key in the config file (did you mean 'workspaces'?)" in out


def test_validate_flags_a_secret_given_twice_and_variables_the_config_file_overrides(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "sink:\n  input_topics: [events]\n"
        "workspaces:\n  - name: shop\n    site_id: s1\n    api_key: inline-key-123\n    api_key_env: SHOP_KEY\n",
    )
    result = run_cli({"SHOP_KEY": SECRET, "CIO_SITE_ID": "other"}, "validate", "--config", config, "--role", "sink")
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert "warning: workspaces[0].api_key: set by api_key and api_key_env: api_key_env is used, api_key ignored" in out
    assert "warning: CIO_SITE_ID: ignored: the config file declares workspaces" in out
    assert SECRET not in out
    assert "inline-key-123" not in out


def test_validate_flags_settings_another_setting_makes_irrelevant() -> None:
    env = {**SINK_ENV, "KAFKA_SASL_USERNAME": "me", "CONNECTOR_TRANSACTIONAL_DELIVERY_TOPIC": "deliveries"}
    out = run_cli(env, "validate").stdout
    assert "warning: KAFKA_SASL_USERNAME: ignored: KAFKA_SECURITY_PROTOCOL is PLAINTEXT, not SASL_*" in out
    assert "warning: CONNECTOR_TRANSACTIONAL_DELIVERY_TOPIC: ignored: CONNECTOR_TRANSACTIONAL_TOPIC is not set" in out


def test_validate_flags_tls_files_without_tls_and_header_workspaces_without_the_header(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked offline", encoding="utf-8")
    config = write(
        tmp_path,
        "workspaces:\n  - {name: shop, site_id: s, api_key: k-secret}\ntopics:\n  events:\n    header_workspaces: [shop]\n",
    )
    env = {"CONNECTOR_INPUT_TOPICS": "events", "KAFKA_SSL_CAFILE": str(ca)}
    out = run_cli(env, "validate", "--config", config).stdout
    assert "warning: KAFKA_SSL_CAFILE: ignored: KAFKA_SECURITY_PROTOCOL is PLAINTEXT, without TLS" in out
    assert "warning: topics.events.header_workspaces: ignored: CONNECTOR_WORKSPACE_HEADER is not set" in out


def test_validate_warns_about_a_topic_mapping_for_a_topic_the_sink_does_not_read(tmp_path: Path) -> None:
    """A misspelt topic under ``topics:`` would leave the real topic decoded as Segment JSON: said, not silent."""
    config = write(tmp_path, "topics:\n  db.public.user:\n    mapping: {preset: debezium}\n  events: {}\n")
    env = {**SINK_ENV, "CONNECTOR_INPUT_TOPICS": "db.public.users,events"}
    result = run_cli(env, "validate", "--config", config, "--role", "sink")
    assert result.returncode == 0, result.stdout  # a warning
    assert (
        "warning: topics.db.public.user: ignored: not one of CONNECTOR_INPUT_TOPICS (did you mean db.public.users?)"
        in result.stdout
    )
    assert "topics.events" not in result.stdout


def test_print_config_says_which_topic_settings_the_config_file_gave(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "workspaces:\n  - {name: a, site_id: s, api_key: k-secret}\n"
        "topics:\n  events:\n    mapping: {preset: debezium}\n  2024:\n    header_workspaces: [a]\n",
    )
    env = {"CONNECTOR_INPUT_TOPICS": "events,2024"}
    result = run_cli(env, "validate", "--config", config, "--print-config")
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["topics.events.mapping"][-1] == "yaml"
    assert rows["topics.events.header_workspaces"][1:] == ["default"]  # empty value, not given
    assert rows["topics.2024.header_workspaces"][1:] == ["a", "yaml"]
    assert rows["topics.2024.mapping"][1:] == ["(none)", "default"]


def test_print_config_names_where_each_workspace_secret_came_from(tmp_path: Path) -> None:
    key_file = tmp_path / "app.key"
    key_file.write_text("app-key-from-file-42\n", encoding="utf-8")
    config = write(
        tmp_path,
        f"workspaces:\n  - name: shop\n    site_id: s1\n    api_key_env: SHOP_KEY\n    app_api_key_file: {key_file}\n",
    )
    result = run_cli({"SHOP_KEY": SECRET}, "validate", "--config", config, "--print-config")
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    assert rows["workspaces[0].site_id"] == ["s1", "yaml"]
    assert rows["workspaces[0].api_key"] == ["***", "env", "SHOP_KEY", "(yaml", "api_key_env)"]
    assert rows["workspaces[0].app_api_key"] == ["***", "file", "(yaml", "app_api_key_file)"]
    assert rows["workspaces[0].region"] == ["auto", "default"]
    assert SECRET not in result.stdout
    assert "app-key-from-file-42" not in result.stdout


def test_validate_accepts_workspace_webhook_keys_from_a_variable_or_a_file(tmp_path: Path) -> None:
    """``webhook_signing_keys_env``/``_file`` load in ``webhooks``: validate (and so check) accepts them too."""
    keys = tmp_path / "hooks.txt"
    keys.write_text("whsec-from-file-old\nwhsec-from-file-new\n", encoding="utf-8")
    config = write(
        tmp_path,
        "workspaces:\n"
        "  - {name: eu, site_id: s1, api_key: k1-secret, webhook_signing_keys_env: CIO_EU_HOOK_KEYS}\n"
        f"  - {{name: us, site_id: s2, api_key: k2-secret, webhook_signing_keys_file: {keys}}}\n",
    )
    env = {"CONNECTOR_INPUT_TOPICS": "events", "CIO_EU_HOOK_KEYS": f"{SECRET},whsec-env-second"}
    result = run_cli(env, "validate", "--config", config, "--role", "webhooks", "--print-config")
    assert result.returncode == 0, result.stdout
    assert not [line for line in result.stdout.splitlines() if line.startswith("error:")], result.stdout
    assert "unknown variable" not in result.stdout  # the variable the config file names is a known one
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    assert rows["workspaces[0].webhook_signing_keys"] == [
        "***,***",
        "env",
        "CIO_EU_HOOK_KEYS",
        "(yaml",
        "webhook_signing_keys_env)",
    ]
    assert rows["workspaces[1].webhook_signing_keys"] == ["***,***", "file", "(yaml", "webhook_signing_keys_file)"]
    for secret in (SECRET, "whsec-env-second", "whsec-from-file-old", "whsec-from-file-new"):
        assert secret not in result.stdout + result.stderr


def test_every_workspace_webhook_key_is_masked_even_when_the_settings_do_not_load() -> None:
    from connector.validate import mask, secret_values

    doc = {
        "workspaces": [
            {"name": "a", "webhook_signing_keys": "whsec-inline-1,whsec-inline-2"},
            {"name": "b", "webhook_signing_keys": ["whsec-listed-3"]},
            {"name": "c", "webhook_signing_keys_env": "HOOKS"},
        ]
    }
    values = secret_values(None, {"HOOKS": "whsec-env-4,whsec-env-5"}, doc)
    text = "whsec-inline-1 whsec-inline-2 whsec-listed-3 whsec-env-4 whsec-env-5"
    assert mask(text, values) == "*** *** *** *** ***"


def test_validate_answers_an_unreadable_config_file_with_one_error(tmp_path: Path) -> None:
    broken = write(tmp_path, "sink: [unclosed\n")
    result = run_cli({}, "validate", "--config", broken)
    assert result.returncode == 2
    assert result.stdout.splitlines()[0].startswith("error: CONNECTOR_CONFIG: ")
    assert "is not valid YAML at line" in result.stdout


def test_validate_checks_what_the_role_requires() -> None:
    run = run_cli(SINK_ENV, "validate", "--role", "run")
    assert run.returncode == 2
    assert "error: role run: CIO_WEBHOOK_SIGNING_KEYS: required" in run.stdout
    assert run_cli(SINK_ENV, "validate", "--role", "sink").returncode == 0
    no_topics = run_cli({"CIO_SITE_ID": "s", "CIO_API_KEY": SECRET}, "validate", "--role", "sink")
    assert no_topics.returncode == 2
    assert "CONNECTOR_INPUT_TOPICS: required" in no_topics.stdout


def test_validate_refuses_routes_the_sink_would_refuse(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "workspaces:\n  - {name: a, site_id: s1, api_key: k1-secret, topics: [events]}\n"
        "  - {name: b, site_id: s2, api_key: k2-secret, topics: [events]}\n",
    )
    result = run_cli({"CONNECTOR_INPUT_TOPICS": "events"}, "validate", "--config", config)
    assert result.returncode == 2
    assert "error: workspaces[1].topics: topic 'events' already feeds workspace 'a'" in result.stdout


def test_print_config_shows_each_value_with_its_source_and_masks_secrets(tmp_path: Path) -> None:
    config = write(tmp_path, "sink:\n  batch_max_operations: 250\n")
    env = {**SINK_ENV, "KAFKA_BOOTSTRAP_SERVERS": "broker-1:9092", "CIO_WEBHOOK_SIGNING_KEYS": "whsec-abcdef"}
    result = run_cli(env, "validate", "--config", config, "--print-config")
    assert result.returncode == 0, result.stdout
    rows = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}
    assert rows["kafka.bootstrap_servers"] == ["broker-1:9092", "env", "KAFKA_BOOTSTRAP_SERVERS"]
    assert rows["sink.batch_max_operations"] == ["250", "yaml"]
    assert rows["sink.linger_seconds"] == ["0.2", "default"]
    assert rows["workspaces[0].api_key"] == ["***", "env", "CIO_API_KEY"]
    assert rows["webhook.signing_keys"] == ["***", "env", "CIO_WEBHOOK_SIGNING_KEYS"]
    assert SECRET not in result.stdout
    assert "whsec-abcdef" not in result.stdout


def test_check_validates_first_so_check_and_run_is_a_preflight() -> None:
    """Without input topics `run` exits 2: so does `check --role run`, before any network call."""
    result = run_cli(
        {**SINK_ENV, "CONNECTOR_INPUT_TOPICS": "", "CIO_WEBHOOK_SIGNING_KEYS": "k", "CONNECTOR_BATCH_MAX_OPS": "3"},
        "check",
        "--role",
        "run",
    )
    assert result.returncode == 2
    assert "error: role run: CONNECTOR_INPUT_TOPICS: required" in result.stderr
    assert "warning: CONNECTOR_BATCH_MAX_OPS: unknown variable" in result.stderr
    assert SECRET not in result.stdout + result.stderr


# --- map --------------------------------------------------------------------------------------------


def test_map_prints_the_operations_a_record_becomes() -> None:
    records = [
        {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "plan": "pro"}},
        {"value": {"type": "track", "userId": "u1", "event": "Signed Up"}, "headers": {"h": "v"}, "timestamp": 1000},
    ]
    stdin = "\n".join(orjson.dumps(r).decode() for r in records) + "\n"
    result = run_cli({}, "map", "--topic", "events", stdin=stdin)
    assert result.returncode == 0, result.stderr
    identify, track = mapped(result.stdout)
    assert identify["outcome"] == "delivered"
    (operation,) = identify["operations"]
    assert operation["workspace"] == "default"
    assert operation["action"] == "person.identify"
    assert operation["body"]["identifiers"] == {"id": "u1"}
    assert operation["body"]["attributes"] == {"email": "a@example.com", "plan": "pro"}
    (event,) = track["operations"]
    assert event["action"] == "person.event"
    assert event["body"]["name"] == "Signed Up"
    assert event["body"]["timestamp"] == 1  # the record's timestamp (ms) is the fallback, as in the sink


def test_map_gives_the_dead_letter_and_filter_reasons_the_sink_would(tmp_path: Path) -> None:
    config = write(tmp_path, "workspaces:\n  - {name: shop, site_id: s, api_key: k-secret, topics: [events]}\n")
    lines = [
        "not json",
        orjson.dumps({"type": "identify", "traits": {}}).decode(),
        orjson.dumps({"type": "track", "userId": "u", "event": "Noise"}).decode(),
        orjson.dumps({"value": {"type": "identify", "userId": "u"}, "topic": "elsewhere"}).decode(),
        orjson.dumps({"value": None}).decode(),
    ]
    env = {"CONNECTOR_DENY_EVENTS": "Noise"}
    result = run_cli(env, "map", "--config", config, "--topic", "events", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    not_json, no_id, noise, elsewhere, tombstone = mapped(result.stdout)
    assert not_json["dead_letter"]["reason"] == "not_json"
    assert no_id["outcome"] == "dead_lettered"
    assert no_id["dead_letter"]["reason"] == "missing_identifier"
    assert noise["outcome"] == "filtered"
    assert noise["filtered"] == [{"workspace": "shop", "reason": "event_denied"}]
    assert elsewhere["dead_letter"]["reason"] == "no_route"
    assert tombstone["outcome"] == "skipped"


def test_map_says_a_schema_registry_payload_needs_the_network_and_names_bad_records() -> None:
    framed = base64.b64encode(b"\x00\x00\x00\x00\x07" + b"avro-bytes").decode()
    stdin = orjson.dumps({"value_base64": framed}).decode() + "\n" + '{"value": 12}\n'
    result = run_cli({}, "map", stdin=stdin)
    assert result.returncode == 1  # a line was not a valid record
    framed_answer, bad = mapped(result.stdout)
    assert framed_answer["outcome"] == "needs_network"
    assert "Schema Registry" in framed_answer["reason"]
    assert "schema id 7" in framed_answer["reason"]
    assert bad == {
        "line": 2,
        "outcome": "invalid_input",
        "error": "value: must be an object, an array, a string or null",
    }


def test_map_builds_transactional_sends_like_the_sink() -> None:
    message = {
        "type": "track",
        "userId": "u1",
        "event": "Transactional Email Requested",
        "properties": {"transactional_message_id": 3, "to": "a@example.com"},
    }
    env = {"CONNECTOR_TRANSACTIONAL_TOPIC": "mail"}
    result = run_cli(env, "map", "--topic", "mail", stdin=orjson.dumps(message).decode() + "\n")
    (answer,) = mapped(result.stdout)
    (send,) = answer["transactional"]
    assert send["api"] == "/v1/send/email"
    assert send["body"]["to"] == "a@example.com"
    assert "operations" not in answer


# --- --help and completion --------------------------------------------------------------------------


def test_help_of_each_role_lists_the_settings_it_reads_with_defaults() -> None:
    sink = run_cli({}, "sink", "--help").stdout
    webhooks = run_cli({}, "webhooks", "--help").stdout
    run = run_cli({}, "run", "--help").stdout
    assert "CONNECTOR_BATCH_MAX_OPERATIONS" in sink
    assert "sink.batch_max_operations" in sink
    assert any(line.split() == ["CONNECTOR_LINGER_SECONDS", "sink.linger_seconds", "0.2"] for line in sink.splitlines())
    assert "CIO_API_KEY" in sink
    assert "CIO_WEBHOOK_SIGNING_KEYS" not in sink
    assert "CIO_WEBHOOK_SIGNING_KEYS" in webhooks
    assert "CONNECTOR_BATCH_MAX_OPERATIONS" not in webhooks
    assert "CIO_WEBHOOK_SIGNING_KEYS" in run
    assert "CONNECTOR_BATCH_MAX_OPERATIONS" in run
    assert "CONNECTOR_SCHEMA_REGISTRY_URL" in sink  # the sink decodes registry-framed records
    assert "CONNECTOR_SCHEMA_REGISTRY_URL" not in webhooks
    for text in (webhooks, run):  # per-workspace webhook paths are configured in the config file only
        assert "workspaces[].webhook_signing_keys" in text
    assert "webhook_signing_keys" not in sink
    for text in (sink, webhooks, run):
        assert "cio-connector validate --print-config" in text


def bash_complete(script: str, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` (the word being typed), with the generated script sourced."""
    quoted = " ".join(f"'{w}'" for w in ("cio-connector", *words))
    probe = f'{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words)}; _cio_connector; echo "${{COMPREPLY[@]}}"'
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.split()


def test_bash_completion_completes_subcommands_options_and_choices() -> None:
    result = run_cli({}, "completion", "bash")
    assert result.returncode == 0
    script = result.stdout
    assert bash_complete(script, "va") == ["validate"]
    assert set(bash_complete(script, "")) >= {"run", "sink", "webhooks", "validate", "map", "check", "offsets"}
    assert bash_complete(script, "offsets", "r") == ["reset"]
    assert bash_complete(script, "offsets", "reset", "--d") == ["--dry-run"]
    assert bash_complete(script, "validate", "--role", "w") == ["webhooks"]
    assert bash_complete(script, "completion", "z") == ["zsh"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (scripts/install-test-tools installs it)")
def test_zsh_completion_is_valid_zsh_and_completes() -> None:
    script = run_cli({}, "completion", "zsh").stdout
    assert script.startswith("#compdef cio-connector")
    subprocess.run(["zsh", "-n"], input=script, text=True, check=True, timeout=60)

    # Sourced in a real zsh, the function walks the words like bash's: bashcompinit provides `complete` and
    # runs completion functions with ksharrays (0-based arrays, as in bash). Its compgen leaves the prefix
    # filtering to zsh's completion system, so the test filters like zsh does.
    def offered(*words: str) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in ("cio-connector", *words))
        probe = f"{script}\nsetopt ksharrays; COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; _cio_connector; echo ${{COMPREPLY[@]}}"
        done = subprocess.run(["zsh", "-f", "-c", probe], capture_output=True, text=True, timeout=60, check=True)
        return [w for w in done.stdout.split() if w.startswith(words[-1])]

    assert offered("va") == ["validate"]
    assert offered("offsets", "") == ["show", "reset"]
    assert offered("validate", "--role", "") == ["run", "sink", "webhooks"]


# --- bad input --------------------------------------------------------------------------------------


def every_command() -> list[list[str]]:
    """Every runnable command path of the parser (leaves of the subcommand tree)."""
    tree = commands(build_parser())
    parents = {node.path.rpartition(" ")[0] for node in tree if node.path}
    return [node.path.split() for node in tree if node.path and node.path not in parents]


@pytest.mark.parametrize("command", every_command(), ids=" ".join)
def test_every_command_answers_a_bad_argument_with_one_line_and_no_secret(command: list[str]) -> None:
    env = {**SINK_ENV, "CIO_WEBHOOK_SIGNING_KEYS": SECRET, "KAFKA_SASL_PASSWORD": SECRET}
    result = run_cli(env, *command, f"--no-such-option={SECRET}")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("cio-connector")
    assert ": error: " in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["completion", "fish"], "invalid choice: 'fish'"),
        (["validate", "--role", "everything"], "--role"),
        (["map", "--topic", " "], "--topic"),
        (["check", "--role", "nope"], "--role"),
    ],
)
def test_bad_values_get_one_line_naming_the_option(args: list[str], named: str) -> None:
    result = run_cli({**SINK_ENV, "CIO_WEBHOOK_SIGNING_KEYS": SECRET}, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert named in result.stderr
    assert SECRET not in result.stdout + result.stderr
