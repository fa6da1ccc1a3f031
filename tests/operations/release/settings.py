"""The deployment's settings with the test release's migrations: run a command with
`DJANGO_SETTINGS_MODULE=tests.operations.release.settings` to take the release."""

from deploy.settings import *  # noqa: F403
from tests.operations.release import RELEASE

MIGRATION_MODULES = RELEASE
