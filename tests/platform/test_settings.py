"""Production settings are safe by default: each check runs the real CLI in a new process."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

GOOD = {
    "PATCHWORK_ENV": "production",
    "SECRET_KEY": "k" * 20 + "-a-long-random-value-made-for-this-test-only-0123456789",
    "KEY_ENCRYPTION_KEY": base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
    "PLATFORM_DOMAIN": "patchwork.example",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "METRICS_TOKEN": "m" * 40,
}


def _patchwork(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in GOOD and k != "STATIC_ROOT"}
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_check_deploy_is_clean() -> None:
    """`patchwork check --deploy` passes with no warnings in production mode."""
    done = _patchwork("check", "--deploy", "--fail-level", "WARNING", **GOOD)
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("SECRET_KEY", "", "SECRET_KEY must be set"),
        (
            "SECRET_KEY",
            "insecure-development-key-never-use-in-production",
            "SECRET_KEY must be set",
        ),
        ("SECRET_KEY", "short", "SECRET_KEY must be set"),
        ("KEY_ENCRYPTION_KEY", "", "KEY_ENCRYPTION_KEY must be set"),
        ("KEY_ENCRYPTION_KEY", "bm90LTMyLWJ5dGVz", "exactly 32 bytes"),
        ("DATABASE_URL", "", "DATABASE_URL must be set"),
        ("PLATFORM_DOMAIN", "", "PLATFORM_DOMAIN must be set"),
        ("DEBUG", "true", "DEBUG cannot be on"),
        ("REDIS_CA_FILE", "/etc/hostname", "REDIS_URL is not a rediss:// address"),
        (
            "REDIS_URL",
            "rediss://127.0.0.1:6379/0?ssl_cert_reqs=none",
            "REDIS_URL cannot carry ssl_ options",
        ),
    ],
)
def test_production_refuses_to_start_unsafe(variable: str, value: str, complaint: str) -> None:
    """A missing or default secret stops the process with a message naming it."""
    done = _patchwork("check", **{**GOOD, variable: value})
    assert done.returncode != 0
    assert complaint in done.stderr


def test_the_default_mode_is_production() -> None:
    """With PATCHWORK_ENV unset, the safe mode applies (and so does its refusal)."""
    env = {k: v for k, v in GOOD.items() if k not in {"PATCHWORK_ENV", "SECRET_KEY"}}
    done = _patchwork("check", **env)
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr


def test_it_refuses_a_redis_ca_file_that_is_not_there() -> None:
    """A CA file named but missing stops the process, naming it, rather than failing at the
    first connection."""
    done = _patchwork(
        "check",
        **{**GOOD, "REDIS_URL": "rediss://127.0.0.1:6379/0", "REDIS_CA_FILE": "/nowhere/ca.crt"},
    )
    assert done.returncode != 0
    assert "REDIS_CA_FILE names no file: /nowhere/ca.crt" in done.stderr
