"""core's own migration files, and this folder's two after them. The package looks in both
folders, so the release follows whatever core's last migration is."""

from pathlib import Path

import core.migrations

__path__ = [*core.migrations.__path__, str(Path(__file__).parent)]

# The last of core's own migrations (the lead keeps them in one line: 0001, 0002, ...).
CORE_LAST = max(
    path.stem
    for folder in core.migrations.__path__
    for path in Path(folder).glob("[0-9][0-9][0-9][0-9]_*.py")
)
