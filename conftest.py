"""Test set-up shared by the whole suite: the mode, before Django reads its settings."""

import os

os.environ["PATCHWORK_ENV"] = "test"
