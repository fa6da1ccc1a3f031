"""What a production install carries: the product's wheel, without extras, brings no demo
code, no Faker and no embedded PostgreSQL."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = {"deploy", "accounts", "tenants", "core", "teamwork", "federation"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and egg-info beside the sources it builds.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, source / name)
    for package in PACKAGES:
        shutil.copytree(REPOSITORY / package, source / package)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel_file,) = target.glob("patchwork-*.whl")
    return wheel_file


def test_it_needs_no_faker_or_pgserver_without_extras(wheel: Path) -> None:
    """`pip install .` pulls only the product's own dependencies."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        fields = Parser().parsestr(archive.read(metadata).decode())
    always = [r for r in fields.get_all("Requires-Dist") or [] if "extra ==" not in r]
    names = {r.split("==")[0].split(";")[0].strip().lower() for r in always}
    assert "django" in names
    assert not names & {"faker", "pgserver", "factory-boy", "httpx"}, sorted(names)


def test_it_ships_no_demo_code(wheel: Path) -> None:
    """The wheel holds the apps and none of the demo's seeding or commands."""
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
    packages = {name.split("/")[0] for name in files if name.endswith(".py")}
    assert packages == PACKAGES
    demo = [n for n in files if "seeding" in n or "demo_setup" in n or "patchwork_demo" in n]
    assert not demo, demo
