"""The fake Customer.io: two listeners (US, EU) sharing one ``FakeState``.

Each listener serves the Track API (``/api/v1``, ``/api/v2``), the App API (``/v1``) and the control
API (``/_fake/``), so one base URL per region stands for both Customer.io hosts of that region::

    async with FakeCustomerIO([Workspace("ws", "site", "key", "us")]) as fake:
        ...  # CIO_TRACK_URL_US = CIO_APP_URL_US = fake.us_url; fake.state.operations_for("ws")
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Final

from aiohttp import web

from connector.fake_cio import app_api, control, track
from connector.fake_cio.gate import LISTENER, Listener, count_answers
from connector.fake_cio.state import FakeState, Faults, Region, Workspace

# Room for a transactional email (≤ 2048 KB) so the fake's own limits answer, not aiohttp's 413.
CLIENT_MAX_SIZE: Final = 4 * 1024 * 1024
SHUTDOWN_TIMEOUT_SECONDS: Final = 2.0
REGIONS: Final[tuple[Region, ...]] = ("us", "eu")


def build_app(region: Region, state: FakeState, urls: dict[str, str]) -> web.Application:
    """One regional listener's application; ``urls`` is filled with both base URLs once bound."""
    app = web.Application(middlewares=[count_answers], client_max_size=CLIENT_MAX_SIZE)
    app[LISTENER] = Listener(region, state, urls)
    track.add_routes(app)
    app_api.add_routes(app)
    control.add_routes(app)
    return app


class FakeCustomerIO:
    """The US and EU listeners of a fake Customer.io, in this event loop. Ports 0 pick free ports."""

    def __init__(
        self,
        workspaces: Iterable[Workspace],
        host: str = "127.0.0.1",
        us_port: int = 0,
        eu_port: int = 0,
        *,
        faults: Faults | None = None,
        max_recorded: int | None = None,
        seed: int | None = None,
    ) -> None:
        self._state = FakeState(workspaces, faults=faults, max_recorded=max_recorded, seed=seed)
        self._host = host
        self._ports: dict[Region, int] = {"us": us_port, "eu": eu_port}
        self._urls: dict[str, str] = {}
        self._runners: list[web.AppRunner] = []

    @property
    def state(self) -> FakeState:
        """Recorded operations, stats and faults, for direct use by tests in the same loop."""
        return self._state

    def url(self, region: Region) -> str:
        """Base URL of a region's listener (Track and App API)."""
        if region not in self._urls:
            raise RuntimeError("FakeCustomerIO is not started")
        return self._urls[region]

    @property
    def us_url(self) -> str:
        """Base URL of the US listener, e.g. ``http://127.0.0.1:7701``."""
        return self.url("us")

    @property
    def eu_url(self) -> str:
        """Base URL of the EU listener."""
        return self.url("eu")

    async def start(self) -> None:
        """Bind both listeners; on failure nothing is left listening."""
        try:
            for region in REGIONS:
                app = build_app(region, self._state, self._urls)
                runner = web.AppRunner(
                    app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
                )
                await runner.setup()
                self._runners.append(runner)
                await web.TCPSite(runner, self._host, self._ports[region]).start()
                port = runner.addresses[0][1]
                host = f"[{self._host}]" if ":" in self._host else self._host
                self._urls[region] = f"http://{host}:{port}"
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close both listeners and their connections (in reverse order of start)."""
        while self._runners:
            await self._runners.pop().cleanup()
        self._urls.clear()

    async def __aenter__(self) -> FakeCustomerIO:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
