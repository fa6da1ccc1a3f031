"""The limits' settings: production gets the documented limits by default, and a malformed
one stops the process at start, naming the setting."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
from django.conf import settings

PRODUCTION = {
    "PATCHWORK_ENV": "production",
    "SECRET_KEY": "s" * 60,
    "KEY_ENCRYPTION_KEY": base64.b64encode(b"k" * 32).decode(),
    "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
    "PLATFORM_DOMAIN": "patchwork.example.gov.uk",
}
NAMES = [
    "RATE_LIMIT_SIGN_IN_ADDRESS",
    "RATE_LIMIT_SIGN_IN_ACCOUNT",
    "RATE_LIMIT_API",
    "RATE_LIMIT_FEDERATION_PEER",
    "RATE_LIMIT_FEDERATION_ADDRESS",
    "TRUSTED_PROXIES",
]


def settings_of(**environment: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in NAMES}
    code = f"import deploy.settings as s; print([getattr(s, n) for n in {NAMES!r}])"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **environment},
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
    )


def test_production_gets_the_documented_limits() -> None:
    """The defaults in the runbook, with only nginx on this host trusted."""
    result = settings_of(**PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(
        ["20/10m", "10/15m", "300/m", "600/m", "20/10m", ["127.0.0.1", "::1"]]
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RATE_LIMIT_API", "300 a minute", "RATE_LIMIT_API must be a count per window like 20/10m"),
        ("RATE_LIMIT_SIGN_IN_ADDRESS", "0/m", "RATE_LIMIT_SIGN_IN_ADDRESS must be a count"),
        ("RATE_LIMIT_FEDERATION_PEER", "10/week", "RATE_LIMIT_FEDERATION_PEER must be a count"),
        ("TRUSTED_PROXIES", "127.0.0.1,nginx", "TRUSTED_PROXIES must list addresses or networks"),
    ],
)
def test_a_malformed_setting_stops_the_process_and_names_it(name, value, message) -> None:  # type: ignore[no-untyped-def]
    result = settings_of(**PRODUCTION, **{name: value})
    assert result.returncode != 0
    assert message in result.stderr
