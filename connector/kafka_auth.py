"""Tokens for SASL/OAUTHBEARER: OIDC client credentials, and AWS MSK IAM (which MSK takes over OAUTHBEARER).

A token source answers ``await token()`` with a current token, fetching a new one only when the cached
one is past 80% of its lifetime (Kafka's own refresh point), so every connection of every client shares
one token and none is sent about to expire. Concurrent callers wait for the same fetch.

Failures are ``TokenError``: one line naming the setting to look at, never the secret. A token endpoint
that answers 5xx/429 or not at all is retried with exponential backoff (``attempts`` in all) before
giving up; a 4xx is a configuration problem and is reported at once.

``kafka.py`` adapts these sources to aiokafka's ``AbstractTokenProvider``; this module does not import
aiokafka.
"""

from __future__ import annotations

import asyncio
import time
from base64 import b64encode
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from connector.config import KafkaSettings, sasl_extensions
from connector.errors import ConnectorError
from connector.logs import get_logger

log = get_logger("kafka_auth")

REFRESH_AT = 0.8  # of a token's lifetime, as Kafka's sasl.login.refresh.window.factor
DEFAULT_LIFETIME_SECONDS = 3600.0  # when the endpoint does not say (expires_in is only RECOMMENDED)


class TokenError(ConnectorError):
    """No token could be had. ``str()`` is one line, ``SETTING: reason``."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


class TokenSource(Protocol):
    """What the OAUTHBEARER adapter in kafka.py needs."""

    mechanism: str

    async def token(self) -> str: ...

    def extensions(self) -> dict[str, str]: ...


class _CachedToken:
    """The token-caching half shared by both sources: ``_fetch`` returns (token, lifetime seconds)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """A token that is not past its refresh point."""
        async with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                started = self._clock()
                token, lifetime = await self._fetch()
                self._token, self._refresh_at = token, started + REFRESH_AT * lifetime
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        raise NotImplementedError  # pragma: no cover - abstract


class OAuthClientCredentials(_CachedToken):
    """OIDC client-credentials grant (RFC 6749 §4.4): client id and secret in a Basic header."""

    mechanism = "OAUTHBEARER"

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        super().__init__(clock)
        if settings.sasl_oauth_token_url is None or settings.sasl_oauth_client_secret is None:
            raise TokenError("KAFKA_SASL_OAUTH_TOKEN_URL", "OAUTHBEARER is not configured")  # validated at load
        self._url = settings.sasl_oauth_token_url
        self._client_id = settings.sasl_oauth_client_id or ""
        self._secret = settings.sasl_oauth_client_secret
        self._scope = settings.sasl_oauth_scope
        self._extensions = sasl_extensions(settings)
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._sleep = sleep
        self.fetches = 0

    def extensions(self) -> dict[str, str]:
        """SASL extensions sent next to the token (Confluent Cloud: logicalCluster, identityPoolId)."""
        return dict(self._extensions)

    async def _fetch(self) -> tuple[str, float]:
        last = ""
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._request()
            except _TransientTokenError as exc:
                last = str(exc)
            if attempt < self._attempts:
                log.warning("OAuth token endpoint failed; retrying.", url=self._url, attempt=attempt, error=last)
                await self._sleep(min(8.0, self._backoff * 2 ** (attempt - 1)))
        raise TokenError(
            "KAFKA_SASL_OAUTH_TOKEN_URL", f"no token from the token endpoint after {self._attempts} attempts ({last})"
        )

    async def _request(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        # RFC 6749 §2.3.1: id and secret form-encoded, then HTTP Basic.
        credentials = f"{quote(self._client_id, safe='')}:{quote(self._secret.reveal(), safe='')}"
        headers = {"Accept": "application/json", "Authorization": f"Basic {b64encode(credentials.encode()).decode()}"}
        self.fetches += 1
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(self._url, data=form, headers=headers) as response,
            ):
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _TransientTokenError(f"network: {type(exc).__name__}") from None
        return self._parse(status, body)

    def _parse(self, status: int, body: Any) -> tuple[str, float]:
        error = str(body.get("error", "")) if isinstance(body, dict) else ""
        if status == 429 or status >= 500:
            raise _TransientTokenError(f"HTTP {status}")
        if status in (400, 401, 403):
            answer = f"{status} {error}".strip()
            if error == "invalid_scope":
                raise TokenError("KAFKA_SASL_OAUTH_SCOPE", f"the token endpoint refused the scope ({answer})")
            if error in ("invalid_client", "unauthorized_client") or status == 401:
                raise TokenError(
                    "KAFKA_SASL_OAUTH_CLIENT_SECRET",
                    f"the token endpoint rejected the client id or secret ({answer})",
                )
            raise TokenError("KAFKA_SASL_OAUTH_TOKEN_URL", f"the token endpoint refused the request ({answer})")
        if status != 200:
            raise TokenError("KAFKA_SASL_OAUTH_TOKEN_URL", f"the token endpoint answered HTTP {status}")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError("KAFKA_SASL_OAUTH_TOKEN_URL", "the token endpoint's answer has no access_token")
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 0.0
        return token, lifetime or DEFAULT_LIFETIME_SECONDS


class _TransientTokenError(Exception):
    """A token request that may succeed if repeated."""


Signer = Callable[[str], tuple[str, int]]


class MskIamToken(_CachedToken):
    """AWS MSK IAM: a SigV4-signed URL made by AWS's ``aws-msk-iam-sasl-signer-python`` (extra ``msk``),
    from the standard credential chain (environment, profile, ECS/EKS role, instance metadata)."""

    mechanism = "AWS_MSK_IAM"

    def __init__(self, region: str, signer: Signer | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.region = region
        self._signer = signer or _default_signer()
        self._wall = time.time

    def extensions(self) -> dict[str, str]:
        """MSK takes no extensions."""
        return {}

    async def _fetch(self) -> tuple[str, float]:
        try:
            # botocore resolves credentials with blocking I/O (files, instance metadata): not on the loop.
            token, expiry_ms = await asyncio.to_thread(self._signer, self.region)
        except Exception as exc:  # noqa: BLE001 - botocore's errors have no common base worth importing
            raise TokenError("AWS_REGION", f"cannot sign an MSK IAM token: {type(exc).__name__}: {exc}") from None
        return token, max(1.0, expiry_ms / 1000 - self._wall())


def _default_signer() -> Signer:
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError:
        raise TokenError(
            "KAFKA_SASL_MECHANISM", "AWS_MSK_IAM needs the optional extra msk: pip install 'cio-connector[msk]'"
        ) from None
    signer: Signer = MSKAuthTokenProvider.generate_auth_token
    return signer


def token_source(settings: KafkaSettings) -> TokenSource | None:
    """The token source of the configured mechanism, or None when it needs none."""
    if not settings.security_protocol.startswith("SASL_"):
        return None
    if settings.sasl_mechanism == "OAUTHBEARER":
        return OAuthClientCredentials(settings)
    if settings.sasl_mechanism == "AWS_MSK_IAM":
        return MskIamToken(settings.aws_region or "")
    return None
