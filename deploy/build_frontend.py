"""Copy GOV.UK Frontend's built assets (from npm) into deploy/frontend/govuk, served as
static files: the pages need nothing from the internet at run time. They live inside the
`deploy` package (git-ignored) so the wheel carries them as package data.

Patchwork is not a GOV.UK service, so the GDS Transport font (licensed for GOV.UK only) is
left out and its @font-face rules are removed; the stylesheets fall back to Arial."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "node_modules" / "govuk-frontend" / "dist" / "govuk"
TARGET = ROOT / "deploy" / "frontend" / "govuk"


def main() -> int:
    if not SOURCE.exists():
        print("govuk-frontend is not installed: run `npm ci` first", file=sys.stderr)
        return 1
    shutil.rmtree(TARGET, ignore_errors=True)
    (TARGET / "assets").mkdir(parents=True)
    css = (SOURCE / "govuk-frontend.min.css").read_text()
    css = re.sub(r"@font-face\{[^}]*\}", "", css)
    css = css.replace("url(/assets/", "url(/static/govuk/assets/")
    css = re.sub(r"/\*# sourceMappingURL=[^*]*\*/", "", css)
    (TARGET / "govuk-frontend.min.css").write_text(css)
    js = (SOURCE / "govuk-frontend.min.js").read_text()
    js = re.sub(r"//# sourceMappingURL=\S+", "", js)
    (TARGET / "govuk-frontend.min.js").write_text(js)
    shutil.copytree(SOURCE / "assets" / "images", TARGET / "assets" / "images")
    print(f"GOV.UK Frontend assets copied to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
