"""Token sources of OAUTHBEARER and AWS_MSK_IAM, and the start-up validation of the Kafka security settings.

The OIDC source talks HTTP to the fake provider (``connector.devtools.fake_oidc``); MSK uses AWS's real
signer, which signs offline from static credentials: no AWS account is involved.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator

import pytest

from connector.config import KafkaSettings, Secret, load_settings
from connector.config import loading as config_loading
from connector.devtools.fake_oidc import FakeOidc
from connector.errors import ConfigError
from connector.kafka_auth import MskIamToken, OAuthClientCredentials, TokenError

SECRET = "client-secret-abc123"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeOidc]:
    with FakeOidc(tmp_path_factory.mktemp("oidc"), {"connector": SECRET}) as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset(idp: FakeOidc) -> Iterator[None]:
    yield
    idp.failures_to_serve, idp.lifetime_seconds = 0, 300


def oauth_settings(idp: FakeOidc, secret: str = SECRET, **extra: object) -> KafkaSettings:
    return KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_url=idp.token_url,
        sasl_oauth_client_id="connector",
        sasl_oauth_client_secret=Secret(secret),
        **extra,  # type: ignore[arg-type]
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def test_token_is_cached_and_refreshed_before_it_expires(idp: FakeOidc) -> None:
    """One fetch serves every connection until 80% of the token's lifetime; the next call fetches anew."""
    clock = Clock()
    source = OAuthClientCredentials(oauth_settings(idp), clock=clock)
    first = await source.token()
    clock.now += 0.79 * idp.lifetime_seconds
    assert await source.token() == first
    assert source.fetches == 1
    clock.now += 0.02 * idp.lifetime_seconds
    await source.token()
    assert source.fetches == 2


async def test_failing_endpoint_is_retried_with_backoff(idp: FakeOidc) -> None:
    """Two 503s, then a token: three requests, two growing waits in between."""
    idp.failures_to_serve = 2
    clock = Clock()
    source = OAuthClientCredentials(oauth_settings(idp), clock=clock, sleep=clock.sleep)
    assert await source.token()
    assert source.fetches == 3
    assert clock.slept == [0.5, 1.0]


async def test_endpoint_that_keeps_failing_names_the_url_setting(idp: FakeOidc) -> None:
    idp.failures_to_serve = 10
    clock = Clock()
    source = OAuthClientCredentials(oauth_settings(idp), attempts=3, clock=clock, sleep=clock.sleep)
    with pytest.raises(TokenError) as caught:
        await source.token()
    assert str(caught.value) == (
        "KAFKA_SASL_OAUTH_TOKEN_URL: no token from the token endpoint after 3 attempts (HTTP 503)"
    )


async def test_rejected_secret_is_reported_at_once_without_the_secret(idp: FakeOidc) -> None:
    clock = Clock()
    source = OAuthClientCredentials(oauth_settings(idp, secret="not-the-secret-9"), clock=clock, sleep=clock.sleep)
    with pytest.raises(TokenError) as caught:
        await source.token()
    assert caught.value.setting == "KAFKA_SASL_OAUTH_CLIENT_SECRET"
    assert "not-the-secret-9" not in str(caught.value)
    assert (source.fetches, clock.slept) == (1, [])


async def test_unreachable_endpoint_names_the_url_setting() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_url="http://127.0.0.1:9/token",
        sasl_oauth_client_id="connector",
        sasl_oauth_client_secret=Secret(SECRET),
    )
    clock = Clock()
    with pytest.raises(TokenError, match=r"^KAFKA_SASL_OAUTH_TOKEN_URL: .*network"):
        await OAuthClientCredentials(settings, attempts=2, clock=clock, sleep=clock.sleep).token()


def test_extensions_are_parsed(idp: FakeOidc) -> None:
    settings = oauth_settings(idp, sasl_oauth_extensions=("logicalCluster=lkc-1", "identityPoolId=pool-2"))
    assert OAuthClientCredentials(settings).extensions() == {"logicalCluster": "lkc-1", "identityPoolId": "pool-2"}


async def test_msk_token_is_signed_for_the_configured_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS's signer, fed static credentials, signs a kafka-cluster:Connect URL for the region asked."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE12")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret-key-not-real")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    source = MskIamToken("eu-west-3")
    token = await source.token()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert parsed.hostname == "kafka.eu-west-3.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert "/eu-west-3/kafka-cluster/" in query["X-Amz-Credential"][0]
    assert await source.token() == token  # cached


def base_env(**extra: str) -> dict[str, str]:
    return {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", **extra}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            base_env(KAFKA_SASL_MECHANISM="GSSAPI"),
            "KAFKA_SASL_MECHANISM: GSSAPI (Kerberos) is not supported; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, "
            "OAUTHBEARER or AWS_MSK_IAM",
        ),
        (base_env(), "KAFKA_SASL_MECHANISM: SASL_SSL needs a mechanism"),
        (
            base_env(KAFKA_SASL_MECHANISM="SCRAM-SHA-512", KAFKA_SASL_USERNAME="u"),
            "KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
        ),
        (
            base_env(KAFKA_SASL_MECHANISM="OAUTHBEARER"),
            "KAFKA_SASL_OAUTH_TOKEN_URL: required with KAFKA_SASL_MECHANISM=OAUTHBEARER",
        ),
        (
            base_env(KAFKA_SASL_MECHANISM="OAUTHBEARER", KAFKA_SASL_OAUTH_TOKEN_URL="idp.example/token"),
            "KAFKA_SASL_OAUTH_TOKEN_URL: must be an http(s) URL (got 'idp.example/token')",
        ),
        (
            base_env(
                KAFKA_SASL_MECHANISM="OAUTHBEARER",
                KAFKA_SASL_OAUTH_TOKEN_URL="https://idp.example/token",
                KAFKA_SASL_OAUTH_CLIENT_ID="id",
            ),
            "KAFKA_SASL_OAUTH_CLIENT_SECRET: required with KAFKA_SASL_MECHANISM=OAUTHBEARER",
        ),
        (
            base_env(
                KAFKA_SASL_MECHANISM="OAUTHBEARER",
                KAFKA_SASL_OAUTH_TOKEN_URL="https://idp.example/token",
                KAFKA_SASL_OAUTH_CLIENT_ID="id",
                KAFKA_SASL_OAUTH_CLIENT_SECRET="s3cr3t-value",
                KAFKA_SASL_OAUTH_EXTENSIONS="logicalCluster=lkc-1,pool2",
            ),
            "KAFKA_SASL_OAUTH_EXTENSIONS: each item must be key=value with a letters-only key other than auth "
            "(got 'pool2')",
        ),
        (
            base_env(KAFKA_SASL_MECHANISM="AWS_MSK_IAM"),
            "AWS_REGION: required with KAFKA_SASL_MECHANISM=AWS_MSK_IAM (or AWS_DEFAULT_REGION)",
        ),
        (
            base_env(KAFKA_SASL_MECHANISM="AWS_MSK_IAM", AWS_REGION="moon"),
            "AWS_REGION: not an AWS region name (got 'moon')",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM",
                "AWS_REGION": "us-east-1",
            },
            "KAFKA_SECURITY_PROTOCOL: AWS_MSK_IAM needs SASL_SSL",
        ),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE: cannot read /nonexistent/ca.pem"),
    ],
)
def test_security_settings_are_validated_at_start_up(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert str(caught.value) == message
    assert "s3cr3t-value" not in str(caught.value)


def test_msk_region_falls_back_to_aws_default_region() -> None:
    settings = load_settings(base_env(KAFKA_SASL_MECHANISM="AWS_MSK_IAM", AWS_DEFAULT_REGION="ap-south-1"))
    assert settings.kafka.aws_region == "ap-south-1"


def test_msk_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_loading, "MSK_EXTRA_MODULE", "aws_msk_iam_sasl_signer_not_installed")
    with pytest.raises(ConfigError, match=r"^KAFKA_SASL_MECHANISM: AWS_MSK_IAM needs the optional extra msk: "):
        load_settings(base_env(KAFKA_SASL_MECHANISM="AWS_MSK_IAM", AWS_REGION="us-east-1"))


def test_config_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from connector.cli import main

    monkey = pytest.MonkeyPatch()
    monkey.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkey.setenv("KAFKA_SASL_MECHANISM", "GSSAPI")
    try:
        assert main(["webhooks"]) == 2
    finally:
        monkey.undo()
    assert capsys.readouterr().err.strip().splitlines() == [
        "cio-connector: config error: KAFKA_SASL_MECHANISM: GSSAPI (Kerberos) is not supported; use PLAIN, "
        "SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM"
    ]
