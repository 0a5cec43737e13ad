"""``cio-connector``: the command line. Parses arguments, loads settings, sets up logging, runs.

Exit codes: 0 success; 1 a runtime failure (credentials rejected, Kafka unreachable at start, a check
failed); 2 invalid configuration or usage — always with one line on stderr saying what is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from connector import __version__
from connector.config import Role, Settings, load_settings
from connector.config.settings import EventLoopChoice
from connector.errors import ConfigError, ConnectorError
from connector.event_loop import run as event_loop_run

PROG = "cio-connector"


def _settings(args: argparse.Namespace, role: Role) -> Settings:
    from connector import logs

    settings = load_settings(config_path=args.config, role=role)
    logs.setup(settings.service.log_level, log_format=settings.service.log_format)
    logs.register_secrets(_secret_values(settings))
    return settings


def _secret_values(settings: Settings) -> list[str]:
    values = [key.reveal() for key in settings.webhook.signing_keys]
    for ws in settings.workspaces:
        values.extend(k.reveal() for k in (ws.api_key, ws.app_api_key) if k is not None)
        values.extend(k.reveal() for k in ws.webhook_signing_keys)
    values.extend(s.reveal() for s in (settings.kafka.sasl_password, settings.kafka.sasl_oauth_client_secret) if s)
    return values


def _run_until_signalled(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], event_loop: EventLoopChoice = "asyncio"
) -> None:
    """Run ``main(stop)`` on ``event_loop``; SIGTERM and SIGINT set ``stop`` so it can shut down in order."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    event_loop_run(runner(), event_loop)


def cmd_service(args: argparse.Namespace) -> int:
    """run / sink / webhooks."""
    from connector.app import run_service

    role = args.command
    settings = _settings(args, role)
    # Start-up objects (modules, settings, metrics) live forever: keep them out of every collection.
    gc.freeze()
    tune_gc(role)
    _run_until_signalled(lambda stop: run_service(settings, role, stop), settings.service.event_loop)
    return 0


# The sink's collection thresholds (the roles with a backlog: sink and run), measured over a 1M-record
# backlog (docs/benchmarks.md, "#17 sink GC and allocations, round 5"). After start-up the collector finds
# no garbage there; its cost is traversing what is buffered: a Ticket, a Record and an Operation per
# in-flight record, which CPython never untracks. An operation waits ~10,000 records, longer than the
# default 10 young collections between generation-1 collections, so gen 1 traversed nearly every one
# again; after 100, most are delivered and freed first: the collector's CPU per 1M records 0.57-0.59 ->
# 0.33-0.39 s, +1.7% events per CPU-second. Rarer full collections used to raise peak RSS (119 -> 178-189
# MB) because aiokafka's dropped fetch batches waited for them; connector/kafka.py now frees those at once.
SINK_GC_THRESHOLD = (700, 100, 10)


def tune_gc(role: str) -> None:
    """Set the collection thresholds of a service role: the webhooks-only role's, or the sink's."""
    if role == "webhooks":
        from connector.webhook.listener import tune_gc_for_webhooks

        tune_gc_for_webhooks()
    else:
        gc.set_threshold(*SINK_GC_THRESHOLD)


def cmd_validate(args: argparse.Namespace) -> int:
    """Check the configuration offline; print the findings (and the effective configuration)."""
    import os

    from connector import validate
    from connector.config.loading import read_yaml

    env = dict(os.environ)
    report = validate.validate(env, args.config, args.role)
    text = validate.format_report(report)
    if args.print_config and report.settings is not None:
        path = args.config or env.get("CONNECTOR_CONFIG") or None
        doc = read_yaml(path) if path else {}
        text = validate.format_config(validate.effective_config(report.settings, env, doc)) + "\n\n" + text
    sys.stdout.write(_masked(text, report.settings, env, args.config) + "\n")
    return 0 if report.ok else 2


def _masked(text: str, settings: Settings | None, env: dict[str, str], config: str | None) -> str:
    """``text`` masked against every secret the environment and the config file hold."""
    from connector import validate
    from connector.config.loading import read_yaml

    path = config or env.get("CONNECTOR_CONFIG") or None
    try:
        doc = read_yaml(path) if path else {}
    except ConfigError:
        doc = {}
    return validate.mask(text, validate.secret_values(settings, env, doc))


def _preflight(args: argparse.Namespace) -> int | None:
    """``validate`` before ``check``: errors stop it (exit 2, findings on stderr), warnings are shown."""
    import os

    from connector import validate

    env = dict(os.environ)
    # check needs workspaces, not a role: without --role, roles are not required here.
    report = validate.validate(env, args.config, args.role, some_role=False)
    findings = [str(f) for f in report.findings]
    if findings:
        sys.stderr.write(_masked("\n".join(findings), report.settings, env, args.config) + "\n")
    return None if report.ok else 2


def cmd_map(args: argparse.Namespace) -> int:
    """Print what each record on stdin becomes, offline."""
    from connector import logs
    from connector.map_tool import run_map

    if args.topic is not None and not args.topic.strip():
        raise ConfigError("--topic", "must be a topic name")
    settings = load_settings(config_path=args.config, role="none")
    logs.setup("WARNING", log_format=settings.service.log_format)  # the JSON lines are the output
    if sys.stdin is None:
        raise ConnectorError("stdin is closed: pipe the records in, e.g. cio-connector map < records.jsonl")
    return run_map(settings, args.topic, sys.stdin.buffer, sys.stdout)


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the shell completion script."""
    from connector.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate every workspace's credentials and region; print a table."""
    from connector.check import run_check
    from connector.metrics import Metrics

    failed = _preflight(args)
    if failed is not None:
        return failed
    settings = _settings(args, "check")
    if settings.service.log_level != "DEBUG":
        from connector import logs

        # The table is the output; progress lines would only clutter it.
        logs.setup("WARNING", log_format=settings.service.log_format)
    return asyncio.run(run_check(settings, Metrics(), sys.stdout, kafka=True))


def cmd_fake_cio(args: argparse.Namespace) -> int:
    """Run the local fake Customer.io."""
    from connector.fake_cio import cli as fake_cli

    return fake_cli.run(args)


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    """Re-inject dead-lettered records."""
    from connector import logs
    from connector.dlq_replay import replay

    settings = load_settings(config_path=args.config, role="none")
    logs.setup(settings.service.log_level, log_format=settings.service.log_format)
    return asyncio.run(replay(settings, args, sys.stderr))


def _quiet_settings(args: argparse.Namespace) -> Settings:
    """Settings for a command whose output is a table: progress logs only at DEBUG; secrets registered
    so that the output can be masked with ``logs.mask``."""
    from connector import logs

    settings = load_settings(config_path=args.config, role="none")
    logs.setup("WARNING" if settings.service.log_level != "DEBUG" else "DEBUG", log_format=settings.service.log_format)
    logs.register_secrets(_secret_values(settings))
    return settings


def cmd_dlq_inspect(args: argparse.Namespace) -> int:
    """Summarise the dead-letter topic by reason."""
    from connector.dlq_inspect import inspect

    settings = _quiet_settings(args)
    return asyncio.run(
        inspect(
            settings,
            reasons=args.reason,
            sources=args.source_topic,
            limit=args.limit,
            as_json=args.json,
            out=sys.stdout,
        )
    )


def cmd_person(args: argparse.Namespace) -> int:
    """Show what Customer.io holds for one person (App API)."""
    from connector.person_tool import show_person

    settings = _quiet_settings(args)
    return asyncio.run(show_person(settings, args.identifier, args.workspace, args.json, sys.stdout))


def cmd_offsets(args: argparse.Namespace) -> int:
    """Show or reset the sink group's committed offsets."""
    from connector import logs, offsets_tool
    from connector.sink.start import parse_start_from

    settings = load_settings(config_path=args.config, role="none")
    logs.setup("WARNING" if settings.service.log_level != "DEBUG" else "DEBUG")  # the table is the output
    if args.offsets_command == "show":
        return asyncio.run(offsets_tool.show(settings, args.topic, sys.stdout))
    try:
        to = parse_start_from(args.to)
    except ValueError as exc:
        raise ConfigError("--to", str(exc)) from None
    return asyncio.run(offsets_tool.reset(settings, to, args.topic, args.dry_run, sys.stdout))


def cmd_demo_producer(args: argparse.Namespace) -> int:
    """Send sample Segment events and signed webhooks continuously."""
    from connector import logs
    from connector.devtools.demo_producer import produce_forever

    settings = load_settings(config_path=args.config, role="none")
    logs.setup(settings.service.log_level, log_format=settings.service.log_format)
    _run_until_signalled(lambda stop: produce_forever(settings, args, stop))
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    """A live view of a running instance."""
    from connector.top.live import TopError, check_interval, check_url, run_top

    try:
        url, interval = check_url(args.url), check_interval(args.interval)
    except TopError as exc:  # a usage error: exit 2, like argparse's
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return run_top(url, interval)  # an unreachable instance raises TopError: exit 1


class _Parser(argparse.ArgumentParser):
    """Bad arguments get one line naming the problem (and exit 2), not the usage text."""

    def error(self, message: str) -> NoReturn:
        import os

        from connector.validate import mask, secret_values

        # The message quotes the arguments: a key pasted in the wrong place must not reach a CI log.
        message = mask(message, secret_values(None, os.environ, {}))
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, read only when asked (importlib.metadata costs
    ~40 ms at start-up otherwise)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **_: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version(PROG)
        except PackageNotFoundError:  # a source tree on PYTHONPATH that was never installed
            installed = f"{__version__} (not installed)"
        sys.stdout.write(f"{PROG} {installed}\n")
        parser.exit()


def _settings_epilog(role: str) -> str:
    """The settings ``role`` reads, with their defaults (from the declarations)."""
    from connector.validate import role_settings

    rows = role_settings(role)
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"  {env:<{widths[0]}}  {key:<{widths[1]}}  {default}" for env, key, default in rows]
    if role in ("run", "webhooks"):  # a config-file key only, so not in the table of variables
        lines.append(
            "  per workspace, config file only: workspaces[].webhook_signing_keys (or _env, _file),\n"
            "    served on the workspace's own path, CONNECTOR_WEBHOOK_PATH/{name}"
        )
    return (
        "settings read (environment variable, config file key, default):\n"
        + "\n".join(lines)
        + f"\n\nThe effective values and where each comes from: {PROG} validate --print-config"
    )


def _add_offline_tools(sub: Any, common: argparse.ArgumentParser) -> None:
    """validate, map and completion: commands that need neither Kafka nor Customer.io."""
    role_option = _Parser(add_help=False)
    role_option.add_argument(
        "--role",
        choices=("run", "sink", "webhooks"),
        help="also require what this role needs to start (default: report each role)",
    )
    validate = sub.add_parser(
        "validate",
        parents=[common, role_option],
        help="check the configuration offline: values, config file keys, routes, each role's requirements",
        description="Check everything that can be checked without the network: settings and the config file "
        "(unknown keys, with 'did you mean'), routes, and what each role requires. Warns about unknown "
        "CONNECTOR_*, CIO_* and KAFKA_* variables, secrets given twice and settings another one makes "
        "irrelevant. Exit 2 on errors, 0 when there are only warnings.",
    )
    validate.add_argument(
        "--print-config",
        action="store_true",
        help="also print every effective setting with its source (default, env or yaml); secrets masked",
    )
    validate.set_defaults(func=cmd_validate)

    mapping = sub.add_parser(
        "map",
        parents=[common],
        help="print what each record on stdin becomes (Customer.io operations or dead-letter reason); sends nothing",
        description="Read one record value per line on stdin (or a JSON object with value or value_base64, "
        "and optionally key, headers, topic and timestamp) and print, per record, one JSON line: the "
        "Customer.io operations it becomes, or why it is dead-lettered or filtered. Uses the sink's own "
        "decode, route and map; sends nothing. Schema Registry payloads are decoded when "
        "CONNECTOR_SCHEMA_REGISTRY_URL is set (each schema id fetched once).",
    )
    mapping.add_argument("--topic", help="topic the records come from (default: the first input topic)")
    mapping.set_defaults(func=cmd_map)

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a completion script: source <(cio-connector completion bash), or for zsh "
        "source <(cio-connector completion zsh).",
    )
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    completion.set_defaults(func=cmd_completion)


def _add_dlq_inspect(dlq_sub: Any, common: argparse.ArgumentParser) -> None:
    inspect = dlq_sub.add_parser(
        "inspect",
        parents=[common],
        help="count dead letters by reason, with a few examples of each",
        description="Read the dead-letter topic from its beginning to its current end, without a consumer "
        "group (nothing is committed; the sink's and the replay's progress are untouched), and print the "
        "number of dead letters per reason with a few examples: their reason, message, workspace and "
        "source topic/partition/offset, and the first bytes of their value.",
    )
    inspect.add_argument("--reason", action="append", help="only this reason (repeatable)")
    inspect.add_argument("--source-topic", action="append", help="only dead letters from this topic (repeatable)")
    inspect.add_argument(
        "--limit", type=int, default=3, help="examples shown per reason (default 3; 0 for counts only)"
    )
    inspect.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    inspect.set_defaults(func=cmd_dlq_inspect)


def _add_person(sub: Any, common: argparse.ArgumentParser) -> None:
    person = sub.add_parser(
        "person",
        parents=[common],
        help="show a person's attributes and devices as Customer.io holds them (App API)",
        description="Look a person up through the App API (GET /v1/customers/{id}/attributes) on the "
        "workspace's pinned region and print their identifiers, attributes and devices. The identifier's "
        "kind is read from its shape, as the sink reads userId: cio_<x> is a cio_id, an email-looking "
        "value an email, anything else an id. Needs the workspace's App API key (CIO_APP_API_KEY). Exit 1 "
        "when the person is not found.",
    )
    person.add_argument("identifier", help="an id, an email address, or cio_<cio id>")
    person.add_argument("--workspace", help="the workspace to ask (required when several are configured)")
    person.add_argument("--json", action="store_true", help="print the App API's customer object as JSON")
    person.set_defaults(func=cmd_person)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog=PROG,
        description="Kafka ↔ Customer.io: deliver Segment-spec events to Customer.io and reporting webhooks to Kafka.",
    )
    parser.add_argument("--version", action=_VersionAction)
    common = _Parser(add_help=False)
    common.add_argument("--config", metavar="FILE", help="YAML config file (default: $CONNECTOR_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, text in (
        ("run", "sink and webhook listener in one process (the sidecar default)"),
        ("sink", "Kafka → Customer.io only"),
        ("webhooks", "Customer.io reporting webhooks → Kafka only"),
    ):
        cmd = sub.add_parser(
            name,
            parents=[common],
            help=text,
            description=text[0].upper() + text[1:] + ".",
            epilog=_settings_epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.set_defaults(func=cmd_service)

    _add_offline_tools(sub, common)

    check = sub.add_parser(
        "check",
        parents=[common],
        help="verify every workspace's credentials and region, and the Kafka connection and topics",
        description="Verify each workspace's Track (and App) API credentials and region, then Kafka: connect and "
        "authenticate, input topics readable by the group, DLQ and webhook topics writable; exit 1 if any fails.",
    )
    check.add_argument(
        "--role",
        choices=("run", "sink", "webhooks"),
        help="validate what this role requires too, so that check && <role> is a preflight (see validate)",
    )
    check.set_defaults(func=cmd_check)

    fake = sub.add_parser(
        "fake-cio",
        help="run a local fake of Customer.io (Track API US/EU, App API) for demos and tests",
        description="A local fake of Customer.io over real HTTP, enforcing the documented rules.",
    )
    from connector.fake_cio import cli as fake_cli

    fake_cli.add_arguments(fake)
    fake.set_defaults(func=cmd_fake_cio)

    dlq = sub.add_parser("dlq", help="dead-letter topic tools", description="Dead-letter topic tools.")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="DLQ_COMMAND")
    replay = dlq_sub.add_parser(
        "replay",
        parents=[common],
        help="re-inject dead-lettered records into their source topic",
        description="Re-inject dead-lettered records (keeping their dedup ids) into their source topic, "
        "or --to-topic. Reads the dead-letter topic up to its current end. Progress is kept in --group, "
        "which never moves past a record that was not replayed and could be: records --reason does not "
        "select are first copied unchanged to the end of the dead-letter topic (a later run, with another "
        "--reason or none, replays them), and --limit stops at the first record past the limit. Records "
        "whose value was truncated to fit the dead-letter topic cannot be replayed; they are listed with "
        "the position of their original.",
    )
    replay.add_argument("--to-topic", help="produce here instead of each record's source topic")
    replay.add_argument(
        "--reason",
        action="append",
        help="only records with this reason (repeatable); the others are kept for a later replay "
        "(copied to the end of the dead-letter topic)",
    )
    replay.add_argument(
        "--limit", type=int, help="replay at most this many records, then stop; the rest stay for the next replay"
    )
    replay.add_argument("--group", default="cio-connector-dlq-replay", help="consumer group remembering progress")
    replay.add_argument("--dry-run", action="store_true", help="count what would be replayed, produce nothing")
    replay.add_argument(
        "--fresh-timestamps",
        action="store_true",
        help="send the replayed identifies without their original timestamp (Customer.io may ignore an "
        "identify older than the profile's last update); adds the header cio-identify-timestamp: omit",
    )
    replay.set_defaults(func=cmd_dlq_replay)
    _add_dlq_inspect(dlq_sub, common)

    _add_person(sub, common)

    offsets = sub.add_parser(
        "offsets",
        help="show or reset the sink group's committed offsets",
        description="The committed offsets of the sink's consumer group (CONNECTOR_GROUP_ID) on its topics.",
    )
    offsets_sub = offsets.add_subparsers(dest="offsets_command", required=True, metavar="OFFSETS_COMMAND")
    topic_option = _Parser(add_help=False)
    topic_option.add_argument(
        "--topic", action="append", help="only this topic (repeatable; default: the sink's input topics)"
    )
    offsets_show = offsets_sub.add_parser(
        "show",
        parents=[common, topic_option],
        help="committed offset, end offset and lag per partition",
        description="Print the committed offset, end offset and lag of each partition for the sink's group.",
    )
    offsets_show.set_defaults(func=cmd_offsets)
    offsets_reset = offsets_sub.add_parser(
        "reset",
        parents=[common, topic_option],
        help="commit new positions for the sink's group (refused while a member is active)",
        description="Commit new positions for the sink's group: earliest, latest, or each partition's first "
        "record at or after an ISO-8601 time (latest where there is none). Refused while the group has "
        "active members: stop every sink of the group first.",
    )
    offsets_reset.add_argument(
        "--to", required=True, metavar="POSITION", help="earliest, latest or an ISO-8601 time (2025-05-01T00:00:00Z)"
    )
    offsets_reset.add_argument("--dry-run", action="store_true", help="print the new positions, commit nothing")
    offsets_reset.set_defaults(func=cmd_offsets)

    demo = sub.add_parser(
        "demo-producer",
        parents=[common],
        help="send sample Segment events to the input topic and signed webhooks to the listener",
        description="Sample traffic for demos (docker compose): Segment events to the first input topic and "
        "signed reporting webhooks to the listener, until stopped.",
    )
    demo.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    demo.add_argument(
        "--webhook-url", default=None, help="listener URL (default: http://127.0.0.1:$CONNECTOR_WEBHOOK_PORT)"
    )
    demo.add_argument("--count", type=int, default=0, help="stop after this many events (0: run until stopped)")
    demo.set_defaults(func=cmd_demo_producer)

    top = sub.add_parser(
        "top",
        help="live view of a running instance, from its /metrics and /readyz",
        description="A live terminal view of a running instance: records and operations per second, lag per "
        "partition, requests in flight against the concurrency limit, retries and 429s, dead letters by "
        "reason, workspace readiness and webhook rates. Press q (or Ctrl-C) to quit.",
    )
    top.add_argument(
        "--url", default="http://127.0.0.1:9464", help="the instance's ops server (default http://127.0.0.1:9464)"
    )
    top.add_argument("--interval", default="2", metavar="S", help="seconds between refreshes (default 2)")
    top.set_defaults(func=cmd_top)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"{PROG}: config error: {exc}", file=sys.stderr)
        return 2
    except ConnectorError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a shell tool killed by SIGPIPE would (128 + 13).
        # stdout is pointed at /dev/null so that Python's flush at exit does not raise (and print) again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
