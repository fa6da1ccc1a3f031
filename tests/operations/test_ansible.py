"""The Ansible deployment: lint-clean, valid, and rendering files nginx and systemd accept."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from tests.certificates import wildcard_certificate

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"
VENV_BIN = Path(sys.executable).parent
INVENTORIES = ["single-host", "split"]
PLAYBOOKS = ["site.yml", "upgrade.yml", "tests/render.yml"]
PLATFORM_DOMAIN = "patchwork.example.org"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
NFT = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")

# The settings the deployment gives the app, in /etc/patchwork/patchwork.env.
APP_SETTINGS = {
    "PATCHWORK_ENV",
    "PATCHWORK_DATA_DIR",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_CA_FILE",
    "PLATFORM_DOMAIN",
    "SITE_PORT",
    "ALLOWED_HOSTS",
    "KEY_ENCRYPTION_KEY",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "DEFAULT_FROM_EMAIL",
    "STATIC_ROOT",
    "MEDIA_ROOT",
    "METRICS_TOKEN",
}
# Secrets with every character that quoting or URLs can get wrong.
AWKWARD_PASSWORD = "p@ss:w/o\"rd$HOME`id`\\n'%#?&"
AWKWARD_SECRET_KEY = 'k"$PATH\\`x`' * 6


def run(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a command from ansible/, with this virtualenv's tools first on PATH."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=ANSIBLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def render(inventory: str, out: Path, overrides: dict[str, object]) -> Path:
    """Render every host's files from an example inventory into out/<host>/."""
    out.mkdir(parents=True, exist_ok=True)
    result = run(
        VENV_BIN / "ansible-playbook",
        "--inventory",
        f"inventories/{inventory}/hosts.yml",
        "--connection",
        "local",
        "tests/render.yml",
        "--extra-vars",
        f"@inventories/{inventory}/group_vars/all/vault.yml.example",
        "--extra-vars",
        json.dumps(
            {
                "render_dir": str(out),
                "ansible_python_interpreter": sys.executable,
                **overrides,
            }
        ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for rendered in out.glob("*.json"):
        for name, content in json.loads(rendered.read_text()).items():
            path = out / rendered.stem / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content if content.endswith("\n") else content + "\n")
    return out


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1 (some containers cannot)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def write_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the platform domain and its councils' subdomains."""
    certificate, key = wildcard_certificate(PLATFORM_DOMAIN, days=1)
    cert_path, key_path = directory / "patchwork.crt", directory / "patchwork.key"
    cert_path.write_text(certificate)
    key_path.write_text(key)
    return cert_path, key_path


def read_env_file(path: Path) -> dict[str, str]:
    """The variables a POSIX shell gets from sourcing an environment file."""
    result = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; exec env -0', "sh", str(path)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )
    pairs = (item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    return {name: value for name, value in pairs}


@dataclass
class SingleHost:
    """The single-host example's files, rendered to run here with test ports and paths."""

    files: Path
    work: Path
    http_port: int
    https_port: int
    upstream_port: int


@pytest.fixture(scope="module")
def single_host(tmp_path_factory: pytest.TempPathFactory) -> SingleHost:
    """Render the single-host inventory with a stub virtualenv, a test certificate and ports."""
    work = tmp_path_factory.mktemp("single-host")
    venv_bin = work / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    for command in ("gunicorn", "celery", "patchwork"):
        (venv_bin / command).write_text("#!/bin/sh\nexit 0\n")
        (venv_bin / command).chmod(0o755)
    (work / "static").mkdir()
    (work / "logs").mkdir()
    cert, key = write_certificate(work)
    host = SingleHost(
        files=work / "rendered" / "patchwork1",
        work=work,
        http_port=free_port(),
        https_port=free_port(),
        upstream_port=free_port(),
    )
    render(
        "single-host",
        work / "rendered",
        {
            "app_venv": str(work / "venv"),
            "nginx_tls_certificate": str(cert),
            "nginx_tls_certificate_key": str(key),
            "nginx_log_dir": str(work / "logs"),
            "nginx_static_root": str(work / "static"),
            "nginx_http_port": host.http_port,
            "nginx_https_port": host.https_port,
            "nginx_upstream": f"127.0.0.1:{host.upstream_port}",
            "nginx_listen_ipv6": ipv6_loopback(),
            "vault_database_password": AWKWARD_PASSWORD,
            "vault_redis_password": AWKWARD_PASSWORD,
            "vault_secret_key": AWKWARD_SECRET_KEY,
        },
    )
    return host


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Render the split inventory (two app hosts, a database host, a Redis host) as it is."""
    return render("split", tmp_path_factory.mktemp("split"), {})


def nginx_conf(host: SingleHost, directory: Path) -> Path:
    """An nginx.conf that includes the rendered site and keeps all its state in directory."""
    conf = directory / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(f"""
        {user}
        worker_processes 1;
        pid {directory}/nginx.pid;
        error_log {directory}/error.log;
        events {{}}
        http {{
            client_body_temp_path {directory}/client_body;
            proxy_temp_path {directory}/proxy;
            fastcgi_temp_path {directory}/fastcgi;
            uwsgi_temp_path {directory}/uwsgi;
            scgi_temp_path {directory}/scgi;
            access_log {directory}/access.log;
            include {host.files / "nginx" / "patchwork.conf"};
        }}
    """)
    return conf


@pytest.fixture
def nginx(single_host: SingleHost, tmp_path: Path) -> Iterator[SingleHost]:
    """nginx running the rendered site in front of an app that echoes what it received."""
    if NGINX is None:
        pytest.skip("nginx not installed: apt-get install nginx (Debian) to run this check")

    class EchoApp(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            # What Django's security and clickjacking middleware send with every page.
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "same-origin")
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    app = http.server.ThreadingHTTPServer(("127.0.0.1", single_host.upstream_port), EchoApp)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    conf = nginx_conf(single_host, tmp_path)
    server = subprocess.Popen(
        [
            NGINX,
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-c",
            str(conf),
            "-g",
            "daemon off;",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", single_host.https_port), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)
        yield single_host
    finally:
        server.terminate()
        server.wait(timeout=10)
        app.shutdown()
        app.server_close()


class LoopbackHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1, sending the host name in SNI as a browser would."""

    def __init__(self, host: str, port: int) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(host, port, timeout=5, context=context)

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def https_get(port: int, host: str, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    """GET a page over HTTPS from nginx on loopback, as a browser at host would."""
    connection = LoopbackHTTPSConnection(host, port)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_it_passes_ansible_lint_production_profile() -> None:
    """ansible-lint's production profile finds nothing, offline."""
    result = run(VENV_BIN / "ansible-lint", "--offline", "--profile", "production", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_it_passes_the_syntax_check_with_each_example_inventory(inventory: str) -> None:
    """Every playbook parses with each example inventory."""
    result = run(
        VENV_BIN / "ansible-playbook",
        "--syntax-check",
        "--inventory",
        f"inventories/{inventory}/hosts.yml",
        *PLAYBOOKS,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_migrates_once_then_restarts_web_hosts_one_at_a_time() -> None:
    """The upgrade installs everywhere, migrates on one web host, then rolls web, then Celery."""
    result = run(
        VENV_BIN / "ansible-playbook",
        "--list-hosts",
        "--inventory",
        "inventories/split/hosts.yml",
        "upgrade.yml",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    plays = [
        sorted(line.strip() for line in play.splitlines() if line.startswith("      "))
        for play in result.stdout.split("play #")[1:]
    ]
    assert plays == [
        ["web1", "web2"],
        ["web1"],
        ["web1", "web2"],
        ["web1", "web2"],
    ]
    web_play = yaml.safe_load((ANSIBLE / "upgrade.yml").read_text())[2]
    assert web_play["serial"] == 1
    health_checks = [task for task in web_play["tasks"] if "ansible.builtin.uri" in task]
    assert health_checks[0]["ansible.builtin.uri"]["url"] == "http://127.0.0.1:8000/readyz"
    assert health_checks[0]["ansible.builtin.uri"]["headers"]["Host"] == "{{ platform_domain }}"


def test_it_renders_an_nginx_site_that_nginx_accepts(
    single_host: SingleHost, tmp_path: Path
) -> None:
    """`nginx -t` accepts the site, certificate and key."""
    if NGINX is None:
        pytest.skip("nginx not installed: apt-get install nginx (Debian) to run this check")
    conf = nginx_conf(single_host, tmp_path)
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_it_serves_councils_over_https_with_security_headers(nginx: SingleHost) -> None:
    """A council's page comes through with the headers, Host and scheme the app relies on."""
    response, body = https_get(nginx.https_port, f"brighton-and-hove.{PLATFORM_DOMAIN}", "/people/")

    assert response.status == 200
    received = json.loads(body)
    assert received["path"] == "/people/"
    # The Host the client sent, port and all: signed federation requests cover the URL.
    assert received["headers"]["Host"] == f"brighton-and-hove.{PLATFORM_DOMAIN}:{nginx.https_port}"
    assert received["headers"]["X-Forwarded-Proto"] == "https"
    assert response.getheader("Strict-Transport-Security") == "max-age=63072000; includeSubDomains"
    # This app sends no policy of its own, so nginx fills in its strict one.
    csp = response.getheader("Content-Security-Policy") or ""
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "same-origin"
    assert response.headers.get_all("X-Frame-Options") == ["DENY"]
    assert response.getheader("Server") == "nginx"
    # Each header once: the app's, or nginx's where the app sent none (tests/operations/
    # test_nginx_proxy.py puts the real app behind nginx).
    for header in (
        "Strict-Transport-Security",
        "Content-Security-Policy",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "Referrer-Policy",
        "Cross-Origin-Opener-Policy",
    ):
        assert len(response.headers.get_all(header) or []) == 1, header


def test_it_serves_static_files_itself_with_the_same_headers(nginx: SingleHost) -> None:
    """/static/ comes from STATIC_ROOT, not the app, and keeps the security headers."""
    (nginx.work / "static" / "patchwork.css").write_text("body { margin: 0 }\n")

    response, body = https_get(nginx.https_port, PLATFORM_DOMAIN, "/static/patchwork.css")

    assert response.status == 200
    assert body == b"body { margin: 0 }\n"
    assert response.getheader("Strict-Transport-Security")
    assert response.getheader("X-Content-Type-Options") == "nosniff"


def test_it_redirects_plain_http_to_https(nginx: SingleHost) -> None:
    """http:// on a council's host redirects to the same page over https://."""
    connection = http.client.HTTPConnection("127.0.0.1", nginx.http_port, timeout=5)
    connection.request(
        "GET", "/people/?page=2", headers={"Host": f"staffordshire.{PLATFORM_DOMAIN}"}
    )
    response = connection.getresponse()

    assert response.status == 301
    assert (
        response.getheader("Location") == f"https://staffordshire.{PLATFORM_DOMAIN}/people/?page=2"
    )


def test_it_answers_no_host_outside_the_platform(nginx: SingleHost) -> None:
    """Other names get no TLS handshake and no HTTP answer."""
    with pytest.raises(ssl.SSLError):
        https_get(nginx.https_port, "patchwork.example.com", "/")
    connection = http.client.HTTPConnection("127.0.0.1", nginx.http_port, timeout=5)
    connection.request("GET", "/", headers={"Host": "patchwork.example.com"})
    with pytest.raises(ConnectionError):
        connection.getresponse()


def test_it_keeps_search_terms_out_of_the_access_log(nginx: SingleHost) -> None:
    """A search for a child's name leaves the path in the log but not the name."""
    https_get(nginx.https_port, f"brighton-and-hove.{PLATFORM_DOMAIN}", "/search/?q=Amelia+Hartley")

    log = nginx.work / "logs" / "patchwork.access.log"
    # nginx writes the line just after the response, so it may lag the client by a moment.
    deadline = time.monotonic() + 5
    while "GET /search/ " not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "GET /search/ " in log.read_text()
    assert "Amelia" not in log.read_text()


def test_it_renders_systemd_units_that_systemd_accepts(single_host: SingleHost) -> None:
    """`systemd-analyze verify` finds nothing to say about any rendered unit."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze not installed: it comes with Debian's systemd package")
    units = sorted((single_host.files / "systemd").iterdir())
    assert {unit.name for unit in units} == {
        "patchwork-web.socket",
        "patchwork-web.service",
        "patchwork-worker.service",
        "patchwork-beat.service",
        "patchwork-backup.service",
        "patchwork-backup.timer",
        "pgbackrest-full.service",
        "pgbackrest-full.timer",
        "pgbackrest-diff.service",
        "pgbackrest-diff.timer",
    }
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *map(str, units)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_it_runs_web_and_celery_hardened_as_the_patchwork_user(single_host: SingleHost) -> None:
    """Each service runs as patchwork, from the virtualenv, sandboxed, with its settings."""
    venv = single_host.work / "venv" / "bin"
    expected = {
        "patchwork-web.service": f"{venv}/gunicorn --config python:deploy.gunicorn_conf "
        "--bind 127.0.0.1:8000 deploy.wsgi:application",
        "patchwork-worker.service": f"{venv}/celery -A deploy.celery worker --loglevel INFO",
        "patchwork-beat.service": f"{venv}/celery -A deploy.celery beat --loglevel INFO "
        "--schedule /var/lib/patchwork-beat/celerybeat-schedule",
    }
    for unit, exec_start in expected.items():
        lines = (single_host.files / "systemd" / unit).read_text().splitlines()
        assert f"ExecStart={exec_start}" in lines
        for directive in (
            "User=patchwork",
            "EnvironmentFile=/etc/patchwork/patchwork.env",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
        ):
            assert directive in lines, f"{unit} lacks {directive}"
    socket_unit = (single_host.files / "systemd" / "patchwork-web.socket").read_text()
    assert "ListenStream=127.0.0.1:8000" in socket_unit.splitlines()


def test_it_prunes_backups_only_after_a_successful_backup(single_host: SingleHost) -> None:
    """The nightly backup runs first; old backups go only if it succeeded."""
    service = (single_host.files / "systemd" / "patchwork-backup.service").read_text().splitlines()
    exec_starts = [line for line in service if line.startswith("ExecStart=")]
    assert exec_starts[0].endswith("/bin/patchwork backup --output /var/backups/patchwork")
    # 14 days from the single-host inventory, in minutes.
    assert "-mmin +20160" in exec_starts[1]
    assert "Type=oneshot" in service
    timer = (single_host.files / "systemd" / "patchwork-backup.timer").read_text().splitlines()
    assert "OnCalendar=*-*-* 02:30:00" in timer
    assert "Persistent=true" in timer


def test_it_archives_wal_to_pgbackrest_with_weekly_full_and_daily_differential_backups(
    single_host: SingleHost, split: Path
) -> None:
    """PostgreSQL hands every WAL segment to the stanza pgBackRest is configured with; the
    repository is encrypted and keeps three full backups; a full backup runs on Sundays and a
    differential one on the other days (decision 0024)."""
    for host in (single_host.files, split / "db1"):
        postgresql = (host / "etc" / "postgresql" / "patchwork.conf").read_text().splitlines()
        assert "archive_mode = on" in postgresql
        assert "wal_level = replica" in postgresql
        assert "archive_command = 'pgbackrest --stanza=patchwork archive-push %p'" in postgresql
        config = (host / "etc" / "pgbackrest.conf").read_text().splitlines()
        assert "[patchwork]" in config
        assert "repo1-retention-full=3" in config
        assert "repo1-cipher-type=aes-256-cbc" in config
        assert "start-fast=y" in config
        (data,) = [line for line in config if line.startswith("pg1-path=")]
        assert re.fullmatch(r"pg1-path=/var/lib/postgresql/\d+/main", data)
        full = (host / "systemd" / "pgbackrest-full.service").read_text().splitlines()
        diff = (host / "systemd" / "pgbackrest-diff.service").read_text().splitlines()
        assert "ExecStart=/usr/bin/pgbackrest --stanza=patchwork --type=full backup" in full
        assert "ExecStart=/usr/bin/pgbackrest --stanza=patchwork --type=diff backup" in diff
        assert "User=postgres" in full and "User=postgres" in diff
        full_timer = (host / "systemd" / "pgbackrest-full.timer").read_text().splitlines()
        diff_timer = (host / "systemd" / "pgbackrest-diff.timer").read_text().splitlines()
        assert "OnCalendar=Sun *-*-* 01:30:00" in full_timer
        assert "OnCalendar=Mon..Sat *-*-* 01:30:00" in diff_timer
    # The app hosts of a split deployment run no PostgreSQL, so no pgBackRest.
    assert not (split / "web1" / "etc" / "pgbackrest.conf").exists()


def test_it_writes_every_setting_the_app_reads(single_host: SingleHost) -> None:
    """The environment file sets exactly the production settings, for this platform domain."""
    env_file = single_host.files / "etc" / "patchwork.env"
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith("#")]
    env = read_env_file(env_file)

    assert {line.split("=", 1)[0] for line in lines} == APP_SETTINGS
    assert env["PATCHWORK_ENV"] == "production"
    assert env["PLATFORM_DOMAIN"] == PLATFORM_DOMAIN
    assert env["ALLOWED_HOSTS"] == f".{PLATFORM_DOMAIN},{PLATFORM_DOMAIN}"
    assert env["STATIC_ROOT"] == "/opt/patchwork/static"
    assert env["MEDIA_ROOT"] == "/var/lib/patchwork/media"
    assert env["EMAIL_USE_TLS"] == "True"


def test_it_quotes_secrets_so_they_reach_the_app_unchanged(single_host: SingleHost) -> None:
    """Quotes, dollars, backslashes and URL characters in secrets survive the file and the URLs."""
    env = read_env_file(single_host.files / "etc" / "patchwork.env")

    assert env["SECRET_KEY"] == AWKWARD_SECRET_KEY
    database = urlsplit(env["DATABASE_URL"])
    assert database.scheme == "postgresql"
    assert (database.username, unquote(database.password or "")) == ("patchwork", AWKWARD_PASSWORD)
    assert (database.hostname, database.port, database.path) == ("127.0.0.1", 5432, "/patchwork")
    assert database.query == "sslmode=verify-full&sslrootcert=/etc/patchwork/internal-ca.crt"
    redis = urlsplit(env["REDIS_URL"])
    assert redis.scheme == "rediss"
    assert env["REDIS_CA_FILE"] == "/etc/patchwork/internal-ca.crt"
    assert unquote(redis.password or "") == AWKWARD_PASSWORD
    assert (redis.hostname, redis.port, redis.path) == ("127.0.0.1", 6379, "/0")


def test_it_points_every_app_host_at_the_database_host(split: Path) -> None:
    """On the split inventory each app host reaches PostgreSQL and Redis on their hosts."""
    for host in ("web1", "web2"):
        env = read_env_file(split / host / "etc" / "patchwork.env")
        assert urlsplit(env["DATABASE_URL"]).hostname == "10.20.0.31", host
        assert urlsplit(env["REDIS_URL"]).hostname == "10.20.0.32", host
    assert not (split / "db1" / "etc" / "patchwork.env").exists()
    assert not (split / "redis1" / "etc" / "patchwork.env").exists()


def test_it_lets_only_app_hosts_reach_postgresql_and_redis(split: Path) -> None:
    """PostgreSQL takes TLS scram logins from app hosts only; the firewall agrees."""
    hba = [
        line.split()
        for line in (split / "db1" / "etc" / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert hba[0] == ["local", "all", "postgres", "peer"]
    assert {tuple(rule) for rule in hba[1:]} == {
        ("hostssl", "patchwork", "patchwork", address, "scram-sha-256")
        for address in (
            "127.0.0.1/32",
            "::1/128",
            "10.20.0.11/32",
            "10.20.0.12/32",
        )
    }
    firewall = (split / "db1" / "etc" / "nftables.conf").read_text()
    assert "ip saddr { 10.20.0.11, 10.20.0.12 } tcp dport { 5432 } accept" in firewall
    assert "80, 443" not in firewall
    assert "6379" not in firewall
    firewall = (split / "redis1" / "etc" / "nftables.conf").read_text()
    assert "ip saddr { 10.20.0.11, 10.20.0.12 } tcp dport { 6379 } accept" in firewall
    assert "5432" not in firewall
    redis = (split / "redis1" / "etc" / "redis.conf").read_text().splitlines()
    assert "bind 10.20.0.32 127.0.0.1" in redis
    assert 'requirepass "CHANGE_ME"' in redis
    # TLS only, with the certificate the internal CA signs for this host.
    assert "port 0" in redis
    assert "tls-port 6379" in redis
    assert "tls-cert-file /etc/ssl/patchwork/redis.crt" in redis
    postgresql = (split / "db1" / "etc" / "postgresql" / "patchwork.conf").read_text().splitlines()
    assert "ssl_cert_file = '/etc/ssl/patchwork/postgresql.crt'" in postgresql


def test_it_renders_firewall_rules_that_nft_accepts(single_host: SingleHost, split: Path) -> None:
    """`nft --check` accepts every host's firewall rules, in both example inventories."""
    if NFT is None:
        pytest.skip("nft not installed: apt-get install nftables (Debian) to run this check")
    rules = [single_host.files / "etc" / "nftables.conf", *split.glob("*/etc/nftables.conf")]
    assert len(rules) == 5  # patchwork1; web1, web2, db1, redis1
    for path in rules:
        result = subprocess.run(
            [NFT, "--check", "--file", str(path)], capture_output=True, text=True, check=False
        )
        if "Operation not permitted" in result.stderr:
            pytest.skip("nft --check needs CAP_NET_ADMIN (run as root)")
        assert result.returncode == 0, f"{path}: {result.stderr}"


def test_it_opens_web_ports_on_web_hosts_only(split: Path) -> None:
    """Web hosts accept 80 and 443; the database host SSH and PostgreSQL from app hosts."""
    web = (split / "web1" / "etc" / "nftables.conf").read_text()
    database = (split / "db1" / "etc" / "nftables.conf").read_text()

    assert "tcp dport { 80, 443 } accept" in web
    assert "policy drop;" in web
    accepted_ports = [line.strip() for line in database.splitlines() if "dport" in line]
    assert accepted_ports == [
        "tcp dport 22 accept",
        "ip saddr { 10.20.0.11, 10.20.0.12 } tcp dport { 5432 } accept",
    ]


def test_it_leaves_the_app_memory_when_postgresql_shares_its_host(
    single_host: SingleHost, split: Path
) -> None:
    """A quarter of the memory for shared_buffers on a database host of its own; an eighth
    on a single host, where gunicorn and Celery need the rest."""

    def setting(path: Path, name: str) -> int:
        (line,) = [x for x in path.read_text().splitlines() if x.startswith(f"{name} =")]
        return int(line.split("=")[1].strip().strip("'").removesuffix("MB"))

    single = single_host.files / "etc" / "postgresql" / "patchwork.conf"
    memory_mb = (
        int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    )  # what the facts say, within rounding
    assert abs(setting(single, "shared_buffers") - memory_mb // 8) <= 2
    assert abs(setting(single, "effective_cache_size") - memory_mb * 3 // 8) <= 4
    # The split example sets its dedicated database host's own figures.
    dedicated = (split / "db1" / "etc" / "postgresql" / "patchwork.conf").read_text()
    assert "shared_buffers = 8GB" in dedicated.replace("'", "")


def test_it_keeps_a_wheelhouse_out_of_git() -> None:
    """ansible/README.md builds the wheelhouse in ansible/wheelhouse/: never committed."""
    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", "ansible/wheelhouse/redis-6.4.0-py3-none-any.whl"],
        cwd=ANSIBLE.parent,
        check=False,
    )
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0
