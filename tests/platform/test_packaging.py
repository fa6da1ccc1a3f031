"""What a production install carries: the product's wheel, without extras, brings no demo
code, no Faker and no embedded PostgreSQL, and does bring GOV.UK Frontend, so an installed
release collects its static files with nothing from the checkout."""

import base64
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from deploy import release

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = {"deploy", "accounts", "tenants", "core", "teamwork", "federation"}
PRODUCTION = {
    "PATCHWORK_ENV": "production",
    "SECRET_KEY": "k" * 20 + "-a-long-random-value-made-for-this-test-only-0123456789",
    "KEY_ENCRYPTION_KEY": base64.b64encode(b"0123456789abcdef0123456789abcdef").decode(),
    # collectstatic never connects: a database that cannot answer proves it.
    "DATABASE_URL": "postgres://patchwork@database.invalid/patchwork",
    "PLATFORM_DOMAIN": "patchwork.example",
}


def release_make(root: Path, dist: Path) -> subprocess.CompletedProcess[str]:
    """What `make release` runs once the assets are built."""
    return subprocess.run(
        [sys.executable, str(root / "deploy" / "release.py"), "--dist", str(dist)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [a for a in release.REQUIRED_ASSETS if not (REPOSITORY / a).is_file()]
    assert not missing, f"{missing} not built: `make install` builds them"
    dist = tmp_path_factory.mktemp("dist")
    made = release_make(REPOSITORY, dist)
    assert made.returncode == 0, made.stderr[-3000:]
    (wheel_file,) = dist.glob("patchwork-*.whl")
    assert made.stdout.splitlines()[-1] == str(wheel_file)
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


def test_it_carries_the_govuk_frontend_assets(wheel: Path) -> None:
    """The stylesheet, the script and the images are package data of `deploy`."""
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    assert {
        "deploy/frontend/govuk/govuk-frontend.min.css",
        "deploy/frontend/govuk/govuk-frontend.min.js",
        "deploy/frontend/govuk/assets/images/favicon.ico",
    } <= files, sorted(name for name in files if "frontend" in name)


def test_it_carries_every_template(wheel: Path) -> None:
    """Every page's templates, Django's and Jinja2's (decision 0027), are in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    templates = {
        str(path.relative_to(REPOSITORY))
        for package in PACKAGES
        for folder in ("templates", "jinja2")
        for path in (REPOSITORY / package).glob(f"{folder}/**/*.html")
    }
    assert any("/jinja2/" in name for name in templates)
    assert templates - files == set()


def test_it_carries_the_synthetic_register_samples(wheel: Path) -> None:
    """The demo and the tests import these from the installed `core` (decision 0007)."""
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
    assert {
        "core/registers_samples/gias_edubasealldata.csv",
        "core/registers_samples/ods_epraccur.csv",
        "core/registers_samples/ods_etr.csv",
        "core/feeds_samples/feed.csv",
    } <= files


def test_it_collects_the_govuk_frontend_once_installed(wheel: Path, tmp_path: Path) -> None:
    """Installed in a fresh virtualenv (dependencies borrowed from this one, never the
    checkout's sources), production's collectstatic finds GOV.UK Frontend, names it in the
    manifest and warns of no missing STATICFILES_DIRS entry (staticfiles.W004)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps"]
        + ["--no-index", wheel],
        check=True,
    )
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A path in a .pth file is added without running that directory's own .pth files, so
    # this virtualenv's editable install of the checkout stays out of sight.
    Path(site_packages, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    static_root = tmp_path / "static"
    outside = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "PYTHONPATH"}}
    env = {**outside, **PRODUCTION, "STATIC_ROOT": str(static_root)}

    where = subprocess.run(
        [python, "-c", "import deploy; print(deploy.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(site_packages), where.stdout
    collected = subprocess.run(
        [venv / "bin" / "patchwork", "collectstatic", "--noinput"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert collected.returncode == 0, collected.stderr[-3000:]
    assert "staticfiles.W004" not in collected.stdout + collected.stderr
    assert (static_root / "govuk" / "govuk-frontend.min.css").is_file()
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    assert "govuk/govuk-frontend.min.css" in manifest["paths"]
    assert "govuk/govuk-frontend.min.js" in manifest["paths"]


def test_release_refuses_a_wheel_without_the_assets(tmp_path: Path) -> None:
    """If pyproject.toml stops packaging the assets, `make release` fails, says which are
    missing and leaves no wheel in dist/."""
    root = tmp_path / "checkout"
    root.mkdir()
    release.sources_copy(REPOSITORY, root)
    pyproject = root / "pyproject.toml"
    packaged = 'deploy = ["frontend/**/*"]\n'
    assert packaged in pyproject.read_text()
    pyproject.write_text(pyproject.read_text().replace(packaged, ""))

    made = release_make(root, tmp_path / "dist")

    assert made.returncode == 1
    assert "lacks deploy/frontend/govuk/govuk-frontend.min.css" in made.stderr
    assert not list((tmp_path / "dist").glob("*"))
