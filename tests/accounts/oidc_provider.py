"""A small, standards-following OpenID Connect provider for the single sign-on tests, run as
its own process on loopback (`python tests/accounts/oidc_provider.py`; it prints the port
it listens on). Not a mock: Patchwork talks to it over real HTTP exactly as it talks to
Microsoft Entra ID.

Each realm (`/<realm>`) is one issuer with its own RS256 key, clients and one test person
the authorize endpoint approves without asking. It serves:
- `/<realm>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0);
- `/<realm>/jwks` (the public key);
- `/<realm>/authorize`: the authorization code flow; refuses an unknown client, a redirect
  address the client did not register, and a request without a PKCE S256 challenge;
- `/<realm>/token`: checks the client secret (HTTP Basic or in the body), that the code
  is this client's, unused, unexpired, for the same redirect address, and the PKCE
  verifier against the challenge; answers with an ID token signed by the realm's key.

Tests set a realm up (and make it misbehave, to see Patchwork refuse) by POSTing JSON to
`/control/<realm>`: `clients` ({id: {secret, redirect_uris}}), `person` (claims), and
`tamper` (`iss`, `aud`: claim values to send instead; `rogue_key`: sign with a key the
realm does not publish; `expired`: a token whose lifetime is over; `nonce`: a nonce to
send instead of the one asked for)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CODE_SECONDS = 60
TOKEN_SECONDS = 300


class Realm:
    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.issuer = f"{base_url}/{name}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": f"{name}-1", "use": "sig"})
        self.rogue_key = RSAKey.generate_key(2048, parameters={"kid": f"{name}-1", "use": "sig"})
        self.clients: dict[str, dict[str, Any]] = {}
        self.person: dict[str, Any] = {}
        self.tamper: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.nonces: list[str] = []

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "email_verified", "name", "amr", "acr"],
        }

    def id_token(self, client_id: str, nonce: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + TOKEN_SECONDS,
            "nonce": nonce,
            **self.person,
        }
        if self.tamper.get("expired"):
            claims.update(iat=now - 2 * TOKEN_SECONDS, exp=now - TOKEN_SECONDS)
        for claim in ("iss", "aud", "nonce"):
            if claim in self.tamper:
                claims[claim] = self.tamper[claim]
        key = self.rogue_key if self.tamper.get("rogue_key") else self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


class Provider(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}"
        self.realms: dict[str, Realm] = {}
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Provider

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _json(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, error: str, description: str, status: int = 400) -> None:
        self._json({"error": error, "error_description": description}, status)

    def _realm(self, name: str) -> Realm | None:
        return self.server.realms.get(name)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        realm = self._realm(parts[0]) if parts else None
        if realm is None:
            return self._error("not_found", "no such realm", 404)
        rest = "/".join(parts[1:])
        if rest == ".well-known/openid-configuration":
            return self._json(realm.metadata())
        if rest == "jwks":
            return self._json({"keys": [realm.key.as_dict(private=False)]})
        if rest == "authorize":
            return self._authorize(realm, {k: v[0] for k, v in parse_qs(url.query).items()})
        if rest == "state":
            return self._json({"nonces": realm.nonces, "codes": len(realm.codes)})
        return self._error("not_found", rest, 404)

    def _authorize(self, realm: Realm, query: dict[str, str]) -> None:
        client = realm.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or redirect_uri not in client["redirect_uris"]:
            # Never redirect to an address the client did not register (RFC 6749 4.1.2.1).
            return self._error("invalid_request", "unknown client or redirect_uri")
        problem = None
        if query.get("response_type") != "code":
            problem = "unsupported_response_type"
        elif "openid" not in query.get("scope", "").split():
            problem = "invalid_scope"
        elif not (query.get("code_challenge_method") == "S256" and query.get("code_challenge")):
            problem = "invalid_request"  # PKCE with S256 is required (RFC 7636, RFC 9700)
        elif not query.get("nonce"):
            problem = "invalid_request"  # noqa: SIM114  (a separate reason, kept apart)
        if problem:
            return self._redirect(redirect_uri, {"error": problem, "state": query.get("state", "")})
        code = secrets.token_urlsafe(24)
        with self.server.lock:
            realm.codes[code] = {
                "client_id": query["client_id"],
                "redirect_uri": redirect_uri,
                "challenge": query["code_challenge"],
                "nonce": query["nonce"],
                "expires": time.time() + CODE_SECONDS,
            }
            realm.nonces.append(query["nonce"])
        self._redirect(redirect_uri, {"code": code, "state": query.get("state", "")})

    def _redirect(self, redirect_uri: str, params: dict[str, str]) -> None:
        separator = "&" if "?" in redirect_uri else "?"
        self.send_response(302)
        self.send_header("Location", f"{redirect_uri}{separator}{urlencode(params)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        parts = urlsplit(self.path).path.strip("/").split("/")
        if parts[0] == "control" and len(parts) == 2:
            return self._control(parts[1], json.loads(self._body() or b"{}"))
        realm = self._realm(parts[0])
        if realm is None or parts[1:] != ["token"]:
            return self._error("not_found", self.path, 404)
        return self._token(realm, {k: v[0] for k, v in parse_qs(self._body().decode()).items()})

    def _token(self, realm: Realm, form: dict[str, str]) -> None:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        client = realm.clients.get(client_id)
        if client is None or not secrets.compare_digest(client["secret"], secret):
            return self._error("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return self._error("unsupported_grant_type", "only authorization_code")
        with self.server.lock:
            grant = realm.codes.pop(form.get("code", ""), None)
        if grant is None or grant["expires"] < time.time() or grant["client_id"] != client_id:
            return self._error("invalid_grant", "unknown, used or expired code")
        if grant["redirect_uri"] != form.get("redirect_uri"):
            return self._error("invalid_grant", "redirect_uri differs")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not verifier or not secrets.compare_digest(challenge, grant["challenge"]):
            return self._error("invalid_grant", "PKCE verifier does not match")
        self._json(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "id_token": realm.id_token(client_id, grant["nonce"]),
            }
        )

    def _control(self, name: str, body: dict[str, Any]) -> None:
        with self.server.lock:
            realm = self.server.realms.get(name)
            if realm is None:
                realm = self.server.realms[name] = Realm(name, self.server.base_url)
            if "clients" in body:
                realm.clients = body["clients"]
            if "person" in body:
                realm.person = body["person"]
            realm.tamper = body.get("tamper", {})
        self._json({"issuer": realm.issuer})


def main() -> None:
    server = Provider()
    print(f"PORT {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
