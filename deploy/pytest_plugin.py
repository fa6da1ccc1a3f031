"""pytest's start (loaded with `-p deploy.pytest_plugin` from pyproject.toml): the test mode,
and the embedded PostgreSQL when no DATABASE_URL is set, before pytest-django reads the
settings. A root conftest.py would load too late: pytest-django reads the settings while
pytest is still looking for conftest files."""

from __future__ import annotations

import os

import pytest

from deploy.embedded_pg import start_unless_configured


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    os.environ["PATCHWORK_ENV"] = "test"
    start_unless_configured()
