"""Build the release: the product's wheel in dist/, with GOV.UK Frontend's assets inside.

`make release` builds the assets first (`npm ci`, then deploy/build_frontend.py) and runs
this. The wheel is built from a copy of the working tree's sources: setuptools writes
build/ and *.egg-info beside what it builds, and a build/lib left behind would slip stale
files into the next wheel. A wheel without the assets installs cleanly and then fails every
page ("Missing staticfiles manifest entry"), so this refuses to leave one in dist/.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# base.html links both through {% static %}: collectstatic's manifest must name them.
REQUIRED_ASSETS = (
    "deploy/frontend/govuk/govuk-frontend.min.css",
    "deploy/frontend/govuk/govuk-frontend.min.js",
)


class ReleaseRefused(Exception):
    """The release cannot be built, or would not serve its pages."""


def missing_assets(wheel: Path) -> list[str]:
    """The required assets that `wheel` does not carry."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    return [asset for asset in REQUIRED_ASSETS if asset not in names]


def sources_copy(root: Path, target: Path) -> None:
    """Copy what the wheel is built from: pyproject.toml, the readme and the packages that
    pyproject.toml names (deploy/ with the built assets among them)."""
    project = tomllib.loads((root / "pyproject.toml").read_text())
    for name in ("pyproject.toml", project["project"]["readme"]):
        shutil.copy2(root / name, target / name)
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in sorted({pattern.rstrip("*").split(".")[0] for pattern in patterns}):
        shutil.copytree(
            root / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )


def wheel_build(root: Path, dist: Path) -> Path:
    """Build the wheel from `root` into `dist` and return its path. Raises ReleaseRefused,
    leaving nothing in `dist`, when the assets are not built or the wheel lacks them."""
    unbuilt = [asset for asset in REQUIRED_ASSETS if not (root / asset).is_file()]
    if unbuilt:
        raise ReleaseRefused(
            f"{', '.join(unbuilt)} not built: run `make release` "
            "(or `npm ci` and `python deploy/build_frontend.py`)"
        )
    with tempfile.TemporaryDirectory(prefix="patchwork-release-") as scratch:
        source, built = Path(scratch) / "source", Path(scratch) / "wheel"
        source.mkdir()
        sources_copy(root, source)
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", built, source],
            capture_output=True,
            text=True,
            check=False,
        )
        if pip.returncode != 0:
            raise ReleaseRefused(f"pip could not build the wheel:\n{pip.stderr}")
        (wheel,) = built.glob("patchwork-*.whl")
        lacking = missing_assets(wheel)
        if lacking:
            raise ReleaseRefused(
                f"{wheel.name} lacks {', '.join(lacking)}: every page would fail once "
                "installed. Check [tool.setuptools.package-data] in pyproject.toml."
            )
        dist.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheel, dist / wheel.name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="default: dist/")
    args = parser.parse_args(argv)
    try:
        wheel = wheel_build(ROOT, args.dist)
    except ReleaseRefused as exc:
        print(f"No release: {exc}", file=sys.stderr)
        return 1
    print(wheel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
