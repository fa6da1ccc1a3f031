"""The `patchwork` console script: Django's management commands with Patchwork's settings."""

import os
import sys

from deploy.embedded_pg import start_unless_configured


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy.settings")
    start_unless_configured()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["patchwork", *sys.argv[1:]])


if __name__ == "__main__":
    main()
