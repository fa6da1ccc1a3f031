import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from federation.services import council_card
from tenants.management.commands._council_arg import council_from_code


class Command(BaseCommand):
    help = (
        "Write a council's signed card, for an operator on another deployment to add it as a peer."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="the council's ONS code, e.g. E06000043")
        parser.add_argument(
            "--output", default="", help="a file to write (default: standard output)"
        )

    def handle(self, *args: object, **options: str) -> None:
        card = council_card(council_from_code(options["code"]))
        text = json.dumps(card, indent=2)
        if options["output"]:
            Path(options["output"]).write_text(text + "\n")
            self.stderr.write(f"Wrote the card of {card['name']} to {options['output']}")
            for key in card["keys"]:
                self.stderr.write(f"  key {key['key_id']}: fingerprint {key['fingerprint']}")
            for key in card.get("encryption_keys", []):
                self.stderr.write(
                    f"  encryption key {key['key_id']}: fingerprint {key['fingerprint']}"
                )
        else:
            self.stdout.write(text)
