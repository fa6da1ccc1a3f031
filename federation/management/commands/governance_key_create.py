from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from federation import protocol
from federation.directory.governance import DirectoryError, governance_key_create, public_key_text
from federation.management.commands._governance import PASSPHRASE_VARIABLE, passphrase


class Command(BaseCommand):
    help = (
        "Create the federation's governance key (Ed25519) that signs the directory of "
        "councils: written to FILE (mode 0600), encrypted with a passphrase from "
        f"{PASSPHRASE_VARIABLE} or the terminal. Keep it offline."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="the key file to create")

    def handle(self, *args: object, **options: str) -> None:
        try:
            key = governance_key_create(
                out=Path(options["out"]), passphrase=passphrase(confirm=True)
            )
        except DirectoryError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Wrote the governance key to {options['out']}"))
        self.stdout.write(f"key id:      {key.key_id}")
        self.stdout.write(f"public key:  {protocol.b64(key.public_key)}")
        self.stdout.write(f"fingerprint: {protocol.fingerprint(key.public_key)}")
        self.stdout.write("Every deployment trusts it with:")
        self.stdout.write(f"FEDERATION_GOVERNANCE_KEYS={public_key_text(key.public_key)}")
