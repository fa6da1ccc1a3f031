"""Shared by the directory commands: the governance key's passphrase."""

from __future__ import annotations

import getpass
import os

from django.core.management.base import CommandError

PASSPHRASE_VARIABLE = "PATCHWORK_GOVERNANCE_PASSPHRASE"


def passphrase(*, confirm: bool = False) -> bytes:
    """From PATCHWORK_GOVERNANCE_PASSPHRASE, or asked for at the terminal."""
    given = os.environ.get(PASSPHRASE_VARIABLE)
    if given:
        return given.encode()
    try:
        first = getpass.getpass("Governance key passphrase: ")
        if confirm and getpass.getpass("The same passphrase again: ") != first:
            raise CommandError("The two passphrases differ")
    except EOFError as exc:
        raise CommandError(
            f"Give the passphrase at the terminal or in {PASSPHRASE_VARIABLE}"
        ) from exc
    return first.encode()
