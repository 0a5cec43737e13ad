"""A fake OpenID Connect provider: the OAuth 2 client-credentials token endpoint and the JWKS of its key.

For tests and the local broker's OAUTHBEARER listener: the connector asks ``/token`` for an access token
(RFC 6749 §4.4, client id and secret in a Basic header or the form), the broker verifies it against
``/jwks``. Tokens are RS256 JWTs signed with an RSA key made by ``openssl`` (no Python dependency), with
``sub`` (the client id), ``aud``, ``iss``, ``iat``, ``exp`` and ``scope``.

Knobs for failure tests, changed between requests: ``failures_to_serve`` (answer 503 that many times),
``lifetime_seconds`` (negative: tokens already expired), ``audience`` (another one: the broker rejects
the token). ``token_requests`` counts the requests to ``/token``. Runs in a thread of its own, so a
broker, subprocesses and the test's event loop can all reach it.
"""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import Any

KEY_ID = "fake-oidc-1"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeOidc:
    """``with FakeOidc(directory, clients={"id": "secret"}) as idp:`` → ``idp.token_url``, ``idp.jwks_url``."""

    def __init__(self, directory: Path, clients: dict[str, str], *, audience: str = "kafka") -> None:
        self.clients = dict(clients)
        self.audience = audience
        self.lifetime_seconds = 300
        self.failures_to_serve = 0
        self.token_requests = 0
        self._lock = threading.Lock()
        self._key = directory / "oidc-signing.key"
        self._openssl = shutil.which("openssl") or "openssl"
        directory.mkdir(parents=True, exist_ok=True)
        self._run("genrsa", "-out", str(self._key), "2048")
        modulus = self._run("rsa", "-in", str(self._key), "-noout", "-modulus").decode().strip()
        self._modulus = binascii.unhexlify(modulus.removeprefix("Modulus=").rjust(512, "0"))
        handler = _handler(self)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-oidc", daemon=True)

    def _run(self, *args: str, data: bytes | None = None) -> bytes:
        result = subprocess.run([self._openssl, *args], input=data, capture_output=True, check=True, timeout=60)  # noqa: S603
        return result.stdout

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set."""
        key = {"kty": "RSA", "kid": KEY_ID, "use": "sig", "alg": "RS256", "n": _b64url(self._modulus), "e": "AQAB"}
        return {"keys": [key]}

    def issue(self, subject: str, scope: str = "") -> tuple[str, int]:
        """A signed access token for ``subject`` and its lifetime in seconds."""
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": subject,
            "aud": self.audience,
            "iat": now,
            "exp": now + self.lifetime_seconds,
        }
        if scope:  # the broker refuses an empty scope claim
            claims["scope"] = scope
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._run("dgst", "-sha256", "-sign", str(self._key), data=signing_input.encode())
        return f"{signing_input}.{_b64url(signature)}", self.lifetime_seconds

    def answer_token_request(self, authorization: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of a POST to /token."""
        with self._lock:
            self.token_requests += 1
            if self.failures_to_serve > 0:
                self.failures_to_serve -= 1
                return 503, {"error": "temporarily_unavailable"}
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode("utf-8", "replace")
            user, _, password = decoded.partition(":")
            client_id, secret = urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if client_id is None or self.clients.get(client_id) != secret:
            return 401, {"error": "invalid_client", "error_description": "client authentication failed"}
        token, lifetime = self.issue(client_id, form.get("scope", ""))
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}

    def __enter__(self) -> FakeOidc:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler(idp: FakeOidc) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: ARG002 - silences BaseHTTPRequestHandler
            return None

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/jwks":
                self._reply(200, idp.jwks())
            else:
                self._reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path != "/token":
                self._reply(404, {"error": "not_found"})
                return
            self._reply(*idp.answer_token_request(self.headers.get("Authorization"), body))

    return Handler
