import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from federation.directory.governance import (
    DEFAULT_VALIDITY_DAYS,
    DirectoryError,
    directory_sign,
    governance_key_load,
)
from federation.management.commands._governance import passphrase


class Command(BaseCommand):
    help = (
        "Sign a directory of councils with the governance key, from a members file "
        '({"members": [{"id", "name", "base_url", "status", "keys": [{"key_id", '
        '"public_key"}]}]}: see docs/operations.md).'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key", action="append", required=True, help="governance key file")
        parser.add_argument("--members", required=True, help="the members file (JSON)")
        parser.add_argument("--out", required=True, help="the signed directory to write")
        parser.add_argument("--valid-days", type=int, default=DEFAULT_VALIDITY_DAYS)
        order = parser.add_mutually_exclusive_group(required=True)
        order.add_argument("--sequence", type=int, help="this directory's sequence number")
        order.add_argument(
            "--previous", help="the directory this one replaces: its sequence plus one"
        )

    def handle(self, *args: object, **options: Any) -> None:
        members_path = Path(str(options["members"]))
        try:
            members = json.loads(members_path.read_text())
        except OSError as exc:
            raise CommandError(f"Could not read {members_path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CommandError(f"{members_path} is not JSON: {exc}") from exc
        sequence = options["sequence"]
        if options["previous"]:
            try:
                sequence = int(json.loads(Path(str(options["previous"])).read_text())["sequence"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CommandError(f"Could not read a sequence from {options['previous']}") from exc
            sequence += 1
        secret = passphrase()
        try:
            keys = [governance_key_load(Path(path), secret) for path in options["key"]]
            document = directory_sign(
                keys=keys,
                members=members,
                sequence=int(sequence),
                now=timezone.now(),
                valid_days=int(options["valid_days"]),
            )
        except DirectoryError as exc:
            raise CommandError(str(exc)) from exc
        Path(str(options["out"])).write_text(json.dumps(document, indent=2) + "\n")
        self.stdout.write(
            self.style.SUCCESS(
                f"Signed directory {document['sequence']} of {len(document['members'])} "
                f"councils, valid until {document['valid_until']}: {options['out']}"
            )
        )
