"""``cio-connector person <id|email|cio_id>``: what Customer.io holds for one person, from the App API.

One request, ``GET /v1/customers/{identifier}/attributes?id_type=…`` (App API docs, "Get a person's
attributes"), on the App host of the workspace's pinned region (``region: us|eu`` pins without a
request; ``auto`` asks the region endpoint with the Track key, as the sink does). The identifier's kind
is read from its shape exactly as the sink reads ``userId`` (``connector.sink.mapping.identifiers.person``):
``cio_<x>`` → cio_id ``x``, email-looking → email, else id.

Segments are not shown: the App API reference this project follows (shared/reference/customerio-api.md
§5) documents no endpoint listing a person's segments, so the command shows what §5.2 returns —
attributes, identifiers, unsubscribed and devices — and says so.

Outcomes (exit codes of ``connector.cli``): 0 found; 1 not found, key rejected, wrong region, network;
2 no App API key, unknown ``--workspace``, several workspaces and no ``--workspace``, an unusable
identifier. Output is masked against every configured secret; attribute values are the person's data
and are printed as Customer.io returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TextIO
from urllib.parse import quote

import orjson

from connector import logs
from connector.cio.client import CustomerIOClient
from connector.cio.region import REGIONS, ResolvedWorkspace, pin, resolve_workspace
from connector.config import Settings, WorkspaceSettings
from connector.errors import AuthError, ConfigError, ConnectorError, DeliveryError
from connector.metrics import Metrics
from connector.sink.mapping import identifiers as ids
from connector.sink.mapping.validation import Invalid

SEGMENTS_NOTE: Final = "not available: the App API reference documents no endpoint listing a person's segments"
MAX_VALUE_CHARS: Final = 200  # table cells only; --json prints values whole


class PersonError(ConnectorError):
    """The look-up failed; ``str()`` is the one line shown to the user (exit 1)."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What to ask the App API: the path identifier and its ``id_type``."""

    id_type: str
    value: str

    @property
    def path(self) -> str:
        return f"/v1/customers/{quote(self.value, safe='')}/attributes?id_type={self.id_type}"


def parse_identifier(text: str) -> Lookup:
    """The look-up for a command-line identifier, classified as the sink classifies ``userId`` (pure)."""
    try:
        value = ids.identifier_value(text.strip(), "identifier")
        if value is None:
            raise ConfigError("identifier", "must not be empty")
        ((id_type, found),) = ids.person(value, "identifier")[0].items()
    except Invalid as exc:
        raise ConfigError("identifier", exc.message.removeprefix("identifier: ")) from None
    return Lookup(id_type, found)


def choose_workspace(settings: Settings, name: str | None) -> WorkspaceSettings:
    """``--workspace``, or the only configured workspace."""
    names = [ws.name for ws in settings.workspaces]
    if name is not None:
        for ws in settings.workspaces:
            if ws.name == name:
                return ws
        raise ConfigError("--workspace", f"no workspace named {name!r} (configured: {', '.join(names) or 'none'})")
    if len(settings.workspaces) == 1:
        return settings.workspaces[0]
    if not settings.workspaces:
        raise ConfigError("CIO_SITE_ID", "no workspace configured")
    raise ConfigError("--workspace", f"required with several workspaces ({', '.join(names)})")


async def _pinned(client: CustomerIOClient, settings: Settings, ws: WorkspaceSettings) -> ResolvedWorkspace:
    if ws.app_api_key is None:
        where = "CIO_APP_API_KEY" if ws.name == "default" else f"workspaces.{ws.name}.app_api_key"
        raise ConfigError(where, f"workspace {ws.name!r} has no App API key: the person look-up needs one")
    if ws.region in REGIONS:
        return pin(ws, settings.endpoints, ws.region)
    try:
        return await resolve_workspace(client, settings.endpoints, ws)
    except DeliveryError as exc:
        raise PersonError(f"workspace {ws.name!r}: cannot pin the region (region: auto): {exc}") from None


async def look_up(settings: Settings, ws: WorkspaceSettings, lookup: Lookup) -> tuple[ResolvedWorkspace, Any]:
    """(the pinned workspace, the App API's ``customer`` object); raises PersonError or ConfigError."""
    async with CustomerIOClient(settings.sink.request_timeout_seconds, Metrics()) as client:
        resolved = await _pinned(client, settings, ws)
        if resolved.app_auth is None:  # pragma: no cover - _pinned refuses a workspace without an App key
            raise ConfigError("CIO_APP_API_KEY", "required")
        try:
            doc = await client.get_app(
                resolved.app_url, lookup.path, resolved.app_auth, labels=resolved.labels, endpoint="person"
            )
        except AuthError as exc:
            raise PersonError(f"workspace {ws.name!r}: {exc}") from None
        except DeliveryError as exc:
            if exc.status == 404:
                raise PersonError(
                    f"person {lookup.id_type} {lookup.value!r} not found in workspace {ws.name!r}"
                ) from None
            raise PersonError(f"workspace {ws.name!r}: App API: {exc}") from None
    customer = doc.get("customer") if isinstance(doc, dict) else None
    if not isinstance(customer, dict):
        raise PersonError(f"workspace {ws.name!r}: App API answered an unexpected body (no customer object)")
    return resolved, customer


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _field(customer: dict[str, Any], name: str, kind: type[dict[str, Any]] | type[list[Any]]) -> Any:
    """``customer[name]`` when it has the documented type, else an empty one (a tolerant reader)."""
    value = customer.get(name)
    return value if isinstance(value, kind) else kind()


def format_person(resolved: ResolvedWorkspace, lookup: Lookup, customer: dict[str, Any]) -> str:
    """The human view: identifiers, attributes (sorted), devices, and the segments note (pure)."""
    lines = [f"workspace {resolved.name} (region {resolved.region}), looked up by {lookup.id_type}"]
    identifiers = _field(customer, "identifiers", dict)
    lines.extend(f"  {kind:<13} {_cell(identifiers.get(kind) or '-')}" for kind in ("id", "email", "cio_id"))
    lines.append(f"  {'unsubscribed':<13} {'yes' if customer.get('unsubscribed') else 'no'}")
    attributes = _field(customer, "attributes", dict)
    lines.append(f"attributes ({len(attributes)})")
    width = max((len(name) for name in attributes), default=0)
    lines += [f"  {name:<{width}}  {_cell(attributes[name])}" for name in sorted(attributes)]
    devices = _field(customer, "devices", list)
    lines.append(f"devices ({len(devices)})")
    for device in devices:
        if isinstance(device, dict):
            lines.append(
                f"  {_cell(device.get('id'))}  {_cell(device.get('platform') or '-')}  "
                f"last used {_cell(device.get('last_used') or '-')}"
            )
    lines.append(f"segments: {SEGMENTS_NOTE}")
    return "\n".join(lines)


async def show_person(settings: Settings, identifier: str, workspace: str | None, as_json: bool, out: TextIO) -> int:
    """Look the person up and print them; 0 (failures raise)."""
    lookup = parse_identifier(identifier)
    ws = choose_workspace(settings, workspace)
    resolved, customer = await look_up(settings, ws, lookup)
    if as_json:
        doc = {
            "workspace": resolved.name,
            "region": resolved.region,
            "id_type": lookup.id_type,
            "customer": customer,
            "segments": None,
            "segments_note": SEGMENTS_NOTE,
        }
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
    else:
        text = format_person(resolved, lookup, customer)
    out.write(logs.mask(text) + "\n")
    return 0
