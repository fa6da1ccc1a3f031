"""The Ansible role's nginx site in front of the real app, over real HTTPS: the nginx role's
template rendered with Jinja2 from the role's defaults (test ports and paths only), nginx
started as a process of its own, gunicorn serving Patchwork with production settings against
the test database, and static files collected as a release collects them.

It checks what only the two layers together decide: each security header arrives once (the
app's on its pages, nginx's on what nginx serves itself), HSTS, TLS versions, the redirect to
HTTPS, what the app is told about the client, static files' caching and types, the upload
limit and /healthz. Skipped, saying so, only where nginx is not installed (CI installs it)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import pytest
import yaml
from django.conf import settings
from django.db import connection

from tests.certificates import wildcard_certificate
from tests.personas import World

# The test database holds the session's councils; pytest-django creates it only for tests
# that ask for a database (gunicorn reads its committed rows on its own connections).
pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "ansible" / "roles" / "nginx"
VENV_BIN = Path(sys.executable).parent
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
# The client's own loopback address: not nginx's (127.0.0.1), so the two can be told apart.
CLIENT_ADDRESS = "127.0.0.2"
COUNCIL_HOST = "brighton-and-hove.localhost"
SECURITY_HEADERS = (
    "Strict-Transport-Security",
    "Content-Security-Policy",
    "Permissions-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_version() -> tuple[int, ...]:
    result = subprocess.run([str(NGINX), "-v"], capture_output=True, text=True, check=True)
    found = re.search(r"nginx/(\d+)\.(\d+)", result.stderr)
    assert found, result.stderr
    return tuple(int(part) for part in found.groups())


def render_site(overrides: dict[str, Any]) -> str:
    """The role's site template, from the role's defaults with `overrides` on top, rendered
    the way Ansible's template module does (trim_blocks); defaults that refer to other values
    are resolved first."""
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True
    )
    values: dict[str, Any] = {
        **yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
        **overrides,
    }

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and "{{" in value:
            return environment.from_string(value).render(values)
        if isinstance(value, list):
            return [resolve(item) for item in value]
        return value

    for name in list(values):
        values[name] = resolve(values[name])
    template = environment.from_string((ROLE / "templates" / "patchwork.conf.j2").read_text())
    return template.render(values)


@dataclass
class Proxy:
    """nginx on loopback ports in front of gunicorn running Patchwork."""

    http_port: int
    https_port: int
    static_root: Path
    probe_log: Path

    def seen(self, path: str) -> dict[str, str | None]:
        """What the app was handed for the last request to `path`."""
        for line in reversed(self.probe_log.read_text().splitlines()):
            record = json.loads(line)
            if record["PATH_INFO"] == path:
                return record  # type: ignore[no-any-return]
        raise AssertionError(f"the app never saw {path}")


class ClientConnection(http.client.HTTPSConnection):
    """HTTPS from the client's loopback address to nginx, with the host name in SNI as a
    browser sends it (the test certificate is self-signed)."""

    def __init__(self, port: int, host: str = COUNCIL_HOST) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(host, port, timeout=10, context=context)

    def connect(self) -> None:
        sock = socket.create_connection(
            ("127.0.0.1", self.port), self.timeout, source_address=(CLIENT_ADDRESS, 0)
        )
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def https(
    proxy: Proxy,
    path: str,
    *,
    host: str = COUNCIL_HOST,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    connection = ClientConnection(proxy.https_port, host)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def wait_until(ready: Any, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, f"{what} stopped:\n{log.read_text()[-3000:]}"
        try:
            if ready():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what} did not start:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def app_environment(work: Path) -> dict[str, str]:
    """Production settings, against the test database the session's councils live in."""
    database = connection.settings_dict
    credentials = quote(database["USER"] or "postgres", safe="")
    if database["PASSWORD"]:
        credentials += ":" + quote(database["PASSWORD"], safe="")
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DEBUG", "SECURE_SSL_REDIRECT", "SECURE_COOKIES", "STATIC_ROOT"}
    }
    environment.update(
        PATCHWORK_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(60),
        KEY_ENCRYPTION_KEY=base64.b64encode(settings.KEY_ENCRYPTION_KEY).decode(),
        DATABASE_URL=(
            f"postgres://{credentials}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{database['NAME']}"
        ),
        PLATFORM_DOMAIN="localhost",
        STATIC_ROOT=str(work / "static"),
        MEDIA_ROOT=str(work / "media"),
        PATCHWORK_DATA_DIR=str(work / "data"),
        PROBE_LOG=str(work / "probe.log"),
    )
    return environment


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def proxy(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """Static files collected, gunicorn serving Patchwork, and nginx with the role's site."""
    if NGINX is None:
        pytest.skip("nginx not installed: apt-get install nginx (Debian) to run this check")
    work = tmp_path_factory.mktemp("nginx-proxy")
    environment = app_environment(work)
    collected = subprocess.run(
        [str(VENV_BIN / "patchwork"), "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert collected.returncode == 0, collected.stderr

    app_port, http_port, https_port = free_port(), free_port(), free_port()
    app_log = work / "gunicorn.log"
    app = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            "--config",
            "python:deploy.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{app_port}",
            "--workers",
            "1",
            "tests.operations.wsgi_probe:application",
        ],
        cwd=ROOT,
        env=environment,
        stdout=app_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:

        def app_ready() -> bool:
            probe = http.client.HTTPConnection("127.0.0.1", app_port, timeout=2)
            try:
                probe.request("GET", "/healthz", headers={"Host": "localhost"})
                return probe.getresponse().status == 200
            finally:
                probe.close()

        wait_until(app_ready, "gunicorn", app, app_log)

        certificate, key = wildcard_certificate("localhost", days=1)
        (work / "tls.crt").write_text(certificate)
        (work / "tls.key").write_text(key)
        (work / "logs").mkdir()
        site = work / "patchwork.conf"
        site.write_text(
            render_site(
                {
                    "ansible_managed": "Rendered by tests/operations/test_nginx_proxy.py",
                    "platform_domain": "localhost",
                    "services_web_bind": f"127.0.0.1:{app_port}",
                    "app_static_root": str(work / "static"),
                    "nginx_tls_certificate": str(work / "tls.crt"),
                    "nginx_tls_certificate_key": str(work / "tls.key"),
                    "nginx_log_dir": str(work / "logs"),
                    "nginx_http_port": http_port,
                    "nginx_https_port": https_port,
                    "nginx_listen_ipv6": False,
                    "nginx_http2_on": nginx_version() >= (1, 25),
                }
            )
        )
        # Debian's nginx.conf, reduced to what the site relies on, with all state in `work`.
        user = "user root;" if os.geteuid() == 0 else ""
        conf = work / "nginx.conf"
        conf.write_text(f"""
            {user}
            worker_processes 1;
            pid {work}/nginx.pid;
            error_log {work}/error.log;
            events {{}}
            http {{
                include /etc/nginx/mime.types;
                default_type application/octet-stream;
                # As Debian 12's nginx.conf has them: the site must not depend on them.
                ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
                ssl_prefer_server_ciphers on;
                client_body_temp_path {work}/client_body;
                proxy_temp_path {work}/proxy;
                fastcgi_temp_path {work}/fastcgi;
                uwsgi_temp_path {work}/uwsgi;
                scgi_temp_path {work}/scgi;
                include {site};
            }}
        """)
        nginx_log = work / "error.log"
        nginx_log.touch()
        server = subprocess.Popen(
            [str(NGINX), "-p", str(work), "-e", str(nginx_log), "-c", str(conf)]
            + ["-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=nginx_log.open("ab"),
        )
        try:
            wait_until(
                lambda: socket.create_connection(("127.0.0.1", https_port), 1).close() is None,
                "nginx",
                server,
                nginx_log,
            )
            yield Proxy(
                http_port=http_port,
                https_port=https_port,
                static_root=work / "static",
                probe_log=work / "probe.log",
            )
        finally:
            stop(server)
    finally:
        stop(app)


def assert_each_once(response: http.client.HTTPResponse) -> None:
    for name in SECURITY_HEADERS:
        assert len(response.headers.get_all(name) or []) == 1, (name, response.headers)


def test_it_sends_the_apps_headers_once_each_and_nginxs_hsts(proxy: Proxy) -> None:
    """The sign-in page carries the app's policy and no-store, and nginx's HSTS, once each."""
    response, body = https(proxy, "/sign-in/")

    assert response.status == 200
    assert b"Sign in" in body
    assert_each_once(response)
    assert response.getheader("Strict-Transport-Security") == (
        "max-age=63072000; includeSubDomains"
    )
    # The app's own policy (nginx's has no script-src), and the app's no-store.
    assert "script-src 'self'" in (response.getheader("Content-Security-Policy") or "")
    assert "usb=()" in (response.getheader("Permissions-Policy") or "")
    assert response.headers.get_all("Cache-Control") == ["no-store"]
    assert response.getheader("Server") == "nginx"


def test_it_sends_the_headers_once_on_an_error_page_from_the_app(proxy: Proxy) -> None:
    """A page that is not there: the app's 404, with the headers once each."""
    response, _ = https(proxy, "/no-such-page/")

    assert response.status == 404
    assert_each_once(response)
    assert "script-src 'self'" in (response.getheader("Content-Security-Policy") or "")


# Offering TLS 1.0 and 1.1 is the point of the test.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_it_offers_tls_1_2_and_1_3_only(proxy: Proxy) -> None:
    """TLS 1.2 and 1.3 connect; TLS 1.0 and 1.1 are refused by the server, not the client."""

    def handshake(version: ssl.TLSVersion) -> str | None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        # Let this client offer the old versions at all (OpenSSL 3 would not by default).
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = version
        with (
            socket.create_connection(("127.0.0.1", proxy.https_port), 5) as sock,
            context.wrap_socket(sock, server_hostname=COUNCIL_HOST) as tls,
        ):
            return tls.version()

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError) as refused:
            handshake(old)
        # The server's alert, not a client that could not offer the version.
        assert "ALERT_PROTOCOL_VERSION" in str(refused.value), refused.value


def test_it_redirects_plain_http_to_https(proxy: Proxy) -> None:
    """http:// on a council's host goes to the same page over https://."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=5)
    connection.request("GET", "/search/?page=2", headers={"Host": COUNCIL_HOST})
    response = connection.getresponse()
    connection.close()

    assert response.status == 301
    assert response.getheader("Location") == f"https://{COUNCIL_HOST}/search/?page=2"


def test_it_tells_the_app_the_scheme_and_the_clients_own_address(proxy: Proxy) -> None:
    """The app is told https (so production's redirect to https does not loop) and the
    client's address, never an address the client made up."""
    response, _ = https(proxy, "/sign-in/", headers={"X-Forwarded-For": "203.0.113.9"})

    assert response.status == 200  # not production's redirect of a plain-http request
    seen = proxy.seen("/sign-in/")
    assert seen["HTTP_X_FORWARDED_PROTO"] == "https"
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_X_FORWARDED_FOR"] == CLIENT_ADDRESS
    assert seen["HTTP_X_REAL_IP"] == CLIENT_ADDRESS
    # The Host the client sent, port and all: signed federation requests cover the URL.
    assert seen["HTTP_HOST"] == f"{COUNCIL_HOST}:{proxy.https_port}"
    assert seen["REMOTE_ADDR"] == "127.0.0.1"  # nginx itself


def test_it_serves_static_files_itself_with_their_types_and_long_caching(proxy: Proxy) -> None:
    """Hashed files (the names pages use) are kept for good, with their right types; a file
    under its plain name only for a day; the app is never asked; the headers come once."""
    manifest = json.loads((proxy.static_root / "staticfiles.json").read_text())["paths"]
    before = proxy.probe_log.read_text()
    for name, content_type in (
        ("govuk/govuk-frontend.min.css", "text/css"),
        ("govuk/govuk-frontend.min.js", "application/javascript"),
        ("patchwork/init.js", "application/javascript"),
        ("govuk/assets/images/govuk-crest.svg", "image/svg+xml"),
    ):
        hashed, body = https(proxy, f"/static/{manifest[name]}")
        assert hashed.status == 200, name
        assert body == (proxy.static_root / manifest[name]).read_bytes()
        assert hashed.getheader("Content-Type") == content_type, name
        assert hashed.headers.get_all("Cache-Control") == ["max-age=315360000"], name
        assert_each_once(hashed)
        # nginx's own policy: nothing in a static file may run or be framed.
        assert (hashed.getheader("Content-Security-Policy") or "").startswith("default-src 'none'")

        plain, _ = https(proxy, f"/static/{name}")
        assert plain.status == 200, name
        assert plain.headers.get_all("Cache-Control") == ["max-age=86400"], name
    # nginx's own error page for a file that is not there: its headers, once each.
    missing, _ = https(proxy, "/static/patchwork/no-such-file.css")
    assert missing.status == 404
    assert_each_once(missing)
    assert proxy.probe_log.read_text() == before


def test_it_refuses_an_upload_over_the_limit_in_words(proxy: Proxy) -> None:
    """A body over 10 MB is refused before the app sees it, with a sentence that says why."""
    connection = ClientConnection(proxy.https_port)
    try:
        connection.putrequest("POST", "/admin/imports/", skip_host=True)
        connection.putheader("Host", COUNCIL_HOST)
        connection.putheader("Content-Type", "text/csv")
        connection.putheader("Content-Length", str(11 * 1024 * 1024))
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()

    assert response.status == 413
    assert body == b"The file is too large: Patchwork accepts uploads of up to 10MB.\n"
    assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert_each_once(response)


def test_it_passes_healthz_through(proxy: Proxy) -> None:
    """The load balancer's check answers through nginx, on the platform's host and a council's."""
    for host in ("localhost", COUNCIL_HOST):
        response, _ = https(proxy, "/healthz", host=host)
        assert response.status == 200, host
        assert_each_once(response)
