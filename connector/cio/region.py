"""Pin each workspace to one region's hosts, once, at start-up.

``region: us`` or ``eu`` pins without a request. ``region: auto`` asks ``GET /api/v1/accounts/region``
(Basic auth; it answers on either host, per Customer.io's "Track API: regions" docs): first on the US Track host and, only
when that host cannot be reached at all, on the EU Track host. The answer's ``region`` picks the host
pair from ``EndpointSettings`` — never the ``url`` of the answer — so configured overrides (a proxy, the
local fake) always win and an EU workspace's traffic never goes through a US URL afterwards.

The lookup also validates the Track credentials: a rejected key raises ``AuthError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connector.cio.client import CustomerIOClient, Labels, RegionInfo, basic_auth, bearer_auth
from connector.config import EndpointSettings, WorkspaceSettings
from connector.errors import AuthError, DeliveryError, PermanentDeliveryError, TransientDeliveryError
from connector.logs import get_logger

REGIONS = ("us", "eu")

log = get_logger("region")


@dataclass(frozen=True, slots=True)
class ResolvedWorkspace:
    """A workspace pinned to one region: its base URLs and ready-made ``Authorization`` header values.

    ``track_url``/``app_url`` have no trailing slash. The header values are secrets: they are left out of
    ``repr`` so a logged or printed ResolvedWorkspace never shows a key. ``environment_id`` is Customer.io's
    workspace id when the region was looked up (``auto``), else None. ``app_auth`` is None without an App
    API key.
    """

    settings: WorkspaceSettings
    region: str
    track_url: str
    app_url: str
    environment_id: int | None
    track_auth: str = field(repr=False)
    app_auth: str | None = field(repr=False)

    @property
    def name(self) -> str:
        """The workspace's configured name (used in logs, metrics and the routing header)."""
        return self.settings.name

    @property
    def labels(self) -> Labels:
        """Metric labels of this workspace's requests."""
        return Labels(self.settings.name, self.region)


async def resolve_workspace(
    client: CustomerIOClient, endpoints: EndpointSettings, ws: WorkspaceSettings
) -> ResolvedWorkspace:
    """Pin ``ws`` to a region and build its auth headers.

    ``us``/``eu``: no request. ``auto``: one region lookup on the US Track host; on a network failure
    there (``TransientDeliveryError`` with ``status`` None) one more on the EU Track host. No other
    retries: the caller decides whether to try again. Raises ``AuthError`` for rejected credentials (or a
    missing Track key), ``TransientDeliveryError`` for 408/429/5xx or unreachable hosts,
    ``PermanentDeliveryError`` for an answer that is not a usable region.
    """
    if ws.api_key is None:
        raise AuthError(f"workspace {ws.name!r} has no Track API key configured")
    track_auth = basic_auth(ws.site_id, ws.api_key)

    region: str = ws.region
    environment_id: int | None = None
    if region not in REGIONS:
        info = await _lookup_region(client, endpoints, ws.name, track_auth)
        if info.region not in REGIONS:
            raise PermanentDeliveryError(f"region endpoint answered an unknown region {info.region!r}")
        region, environment_id = info.region, info.environment_id

    resolved = pin(ws, endpoints, region, environment_id)
    log.info(
        "Workspace region pinned.",
        workspace=ws.name,
        region=region,
        source="configured" if ws.region in REGIONS else "detected",
        environment_id=environment_id,
    )
    return resolved


def pin(
    ws: WorkspaceSettings, endpoints: EndpointSettings, region: str, environment_id: int | None = None
) -> ResolvedWorkspace:
    """``ws`` pinned to ``region``'s host pair, with its auth headers; no request is made."""
    return ResolvedWorkspace(
        settings=ws,
        region=region,
        track_url=endpoints.track_url(region).rstrip("/"),
        app_url=endpoints.app_url(region).rstrip("/"),
        environment_id=environment_id,
        track_auth=basic_auth(ws.site_id, ws.api_key) if ws.api_key is not None else "",
        app_auth=bearer_auth(ws.app_api_key) if ws.app_api_key is not None else None,
    )


async def _lookup_region(client: CustomerIOClient, endpoints: EndpointSettings, name: str, auth: str) -> RegionInfo:
    """The region lookup: US host first, the EU host only if the US host cannot be reached."""
    try:
        return await client.get_region(endpoints.track_url_us.rstrip("/"), auth, Labels(name, "us"))
    except TransientDeliveryError as exc:
        if exc.status is not None:
            raise
        log.warning("Region lookup failed on the US host; asking the EU host.", workspace=name, error=str(exc))
    return await client.get_region(endpoints.track_url_eu.rstrip("/"), auth, Labels(name, "eu"))


def wrong_region_message(actual: str, pinned: str) -> str:
    """The words ``check`` and the running sink both use for a workspace pinned to the wrong region."""
    return f"Track API: the account is in region {actual}, not {pinned}"


async def diagnose_rejection(
    client: CustomerIOClient, endpoints: EndpointSettings, ws: ResolvedWorkspace
) -> str | None:
    """Why the pinned host rejected ``ws``'s credentials, when the cause is the region; else None.

    One region lookup on the *other* region's Track host with the same credentials: if it accepts them
    and names another region than the pinned one, the key is fine and the region setting is wrong. Any
    failure of that lookup (rejected too, unreachable) leaves the rejection as it is.
    """
    other = "us" if ws.region == "eu" else "eu"
    try:
        info = await client.get_region(endpoints.track_url(other).rstrip("/"), ws.track_auth, Labels(ws.name, other))
    except DeliveryError:
        return None
    if info.region == ws.region:
        return None
    return f"{wrong_region_message(info.region, ws.region)} (the key is accepted there: fix the region setting)"
