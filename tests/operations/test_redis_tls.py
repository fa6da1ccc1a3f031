"""Redis over TLS (rediss://): every Redis client of the app — the cache, Celery's broker and
result backend, the readiness check — verifies the server's certificate against
REDIS_CA_FILE and the host name in REDIS_URL, against a private redis-server of the test's
own with TLS only. A certificate from another CA, or for another name, is refused."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.certificates import certificate_authority, server_certificate
from tests.operations.test_readyz_real_servers import free_port

REDIS_SERVER = shutil.which("redis-server")
PASSWORD = "a-redis-password-for-the-tls-test"

# Run by `patchwork shell -c` in a new process with the environment under test: what each
# client made what with its connection.
PROBE = """
import json
from django.core.cache import caches
from deploy.celery import app
from deploy.health import check_redis

seen = {}
def attempt(name, action):
    try:
        action()
        seen[name] = "ok"
    except Exception as exc:
        seen[name] = f"{type(exc).__name__}: {exc}"
# The clients themselves: the caches' own calls ignore Redis errors (a miss, a no-op).
attempt("cache", lambda: caches["default"].client.get_client(write=True).ping())
attempt("rate limits", lambda: caches["ratelimit"].client.get_client(write=True).ping())
attempt("broker", lambda: app.connection_for_write().ensure_connection(max_retries=1))
attempt("result backend", lambda: app.backend.client.ping())
seen["readiness"] = check_redis().status
print("SEEN", json.dumps(seen))
"""


@dataclass
class TLSRedis:
    port: int
    ca_file: Path
    another_ca_file: Path


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSRedis]:
    """redis-server with TLS only (port 0), a certificate for 127.0.0.1 from a CA of this
    test's own, and the password."""
    if REDIS_SERVER is None:
        pytest.skip("needs redis-server (Debian's is built with TLS)")
    directory = tmp_path_factory.mktemp("tls-redis")
    authority = certificate_authority("Test internal CA")
    certificate, key = server_certificate(
        authority, x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    )
    (directory / "redis.crt").write_text(certificate)
    (directory / "redis.key").write_text(key)
    (directory / "ca.crt").write_text(pem(authority[0]))
    (directory / "another-ca.crt").write_text(pem(certificate_authority("Another CA")[0]))
    port = free_port()
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port", "0",
            "--tls-port", str(port),
            "--bind", "127.0.0.1",
            "--tls-cert-file", str(directory / "redis.crt"),
            "--tls-key-file", str(directory / "redis.key"),
            "--tls-ca-cert-file", str(directory / "ca.crt"),
            "--tls-auth-clients", "no",
            "--requirepass", PASSWORD,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        password=PASSWORD,
        ssl=True,
        ssl_ca_certs=str(directory / "ca.crt"),
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("redis-server with TLS did not start")
            time.sleep(0.1)
    yield TLSRedis(port, directory / "ca.crt", directory / "another-ca.crt")
    process.terminate()
    process.wait(timeout=10)


def probe(host: str, port: int, ca_file: Path | None) -> dict[str, str]:
    """What the app's Redis clients make of rediss://host:port, in a new process."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "REDIS_CA_FILE"}},
        "REDIS_URL": f"rediss://:{PASSWORD}@{host}:{port}/0",
        **({"REDIS_CA_FILE": str(ca_file)} if ca_file else {}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "shell", "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("SEEN ")]
    assert lines, done.stdout + done.stderr
    seen: dict[str, str] = json.loads(lines[-1].removeprefix("SEEN "))
    return seen


CLIENTS = ("cache", "rate limits", "broker", "result backend")


def test_it_connects_every_client_verifying_the_internal_ca(tls_redis: TLSRedis) -> None:
    """With the CA's certificate in REDIS_CA_FILE, the cache, the broker, the result
    backend and /readyz's check all reach Redis."""
    seen = probe("127.0.0.1", tls_redis.port, tls_redis.ca_file)
    assert seen == {**dict.fromkeys(CLIENTS, "ok"), "readiness": "ok"}


def test_it_refuses_a_certificate_from_another_ca(tls_redis: TLSRedis) -> None:
    """A client trusting another CA gets no connection: none falls back to accepting any
    certificate (Celery's broker would, left to itself)."""
    seen = probe("127.0.0.1", tls_redis.port, tls_redis.another_ca_file)
    for client in CLIENTS:
        assert "certificate verify failed" in seen[client], (client, seen[client])
    assert seen["readiness"] == "error"


def test_it_trusts_only_the_system_cas_without_redis_ca_file(tls_redis: TLSRedis) -> None:
    """Safe by default: without REDIS_CA_FILE, the system's CAs decide, and they did not
    sign the internal CA's certificate."""
    seen = probe("127.0.0.1", tls_redis.port, None)
    for client in CLIENTS:
        assert "certificate verify failed" in seen[client], (client, seen[client])


def test_it_refuses_a_certificate_for_another_name(tls_redis: TLSRedis) -> None:
    """The certificate names 127.0.0.1; reached as `localhost`, it does not match."""
    seen = probe("localhost", tls_redis.port, tls_redis.ca_file)
    for client in CLIENTS:
        assert "certificate verify failed" in seen[client], (client, seen[client])
        assert "match" in seen[client] or "mismatch" in seen[client], (client, seen[client])
