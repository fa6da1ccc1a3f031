"""Fixtures of the deployment test (`make deploy-test`, as root): the release and a newer
build of it, the wheelhouse, the Debian 12 root filesystem and the private network."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.release import sources_copy, wheel_build
from tests.deploy.machines import Lab, lab, root_filesystem, wheelhouse

REPOSITORY = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PATCHWORK_DEPLOY_CACHE", "/var/tmp/patchwork-deploy-test"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the deployment test boots containers: run it as root")
        for item in items:
            item.add_marker(skip)


@dataclass(frozen=True)
class Releases:
    """The release under test and a newer build of the same code, for upgrade.yml."""

    current: Path
    newer: Path
    wheelhouse: Path


@pytest.fixture(scope="session")
def work() -> Iterator[Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE))
    yield directory
    if not os.environ.get("PATCHWORK_DEPLOY_KEEP"):
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def base_root() -> Path:
    started = time.monotonic()
    root = root_filesystem(CACHE)
    print(f"  root filesystem {root.name}: {time.monotonic() - started:.0f}s")
    return root


@pytest.fixture(scope="session")
def releases(work: Path, base_root: Path) -> Releases:
    """`make release`'s wheel, a newer build (the next patch version), and the wheelhouse
    built by ansible/wheelhouse.sh in the hosts' own Debian and Python."""
    started = time.monotonic()
    dist = work / "dist"
    current = wheel_build(REPOSITORY, dist)
    version = re.search(r"patchwork-([^-]+)-", current.name)
    assert version
    major, minor, patch = (int(part) for part in version[1].split(".")[:3])
    newer_version = f"{major}.{minor}.{patch + 1}"
    source = work / "newer-source"
    source.mkdir()
    sources_copy(REPOSITORY, source)
    pyproject = source / "pyproject.toml"
    pyproject.write_text(
        re.sub(
            r'(?m)^version = ".*"$', f'version = "{newer_version}"', pyproject.read_text(), count=1
        )
    )
    newer = wheel_build(source, work / "dist-newer")
    assert newer_version in newer.name, newer.name
    houses = wheelhouse(base_root, current, work / "wheelhouse")
    # Debian 12's Python 3.11.2 needs it (redis: python_full_version < "3.11.3"); a
    # wheelhouse made by the controller's newer 3.11 leaves it out and fails to install.
    assert list(houses.glob("async_timeout-*.whl")), sorted(p.name for p in houses.iterdir())
    print(
        f"  releases {current.name}, {newer.name} and wheelhouse: {time.monotonic() - started:.0f}s"
    )
    return Releases(current=current, newer=newer, wheelhouse=houses)


@pytest.fixture(scope="session")
def the_lab(base_root: Path, work: Path) -> Iterator[Lab]:
    with lab(base_root, work / "lab") as running:
        yield running
