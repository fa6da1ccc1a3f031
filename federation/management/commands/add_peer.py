import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from federation.services import peer_add


class Command(BaseCommand):
    help = "Add a council on another deployment as a peer, from the card its operator exported."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the council card (JSON)")

    def handle(self, *args: object, **options: str) -> None:
        try:
            card = json.loads(Path(options["file"]).read_text())
            peer = peer_add(card=card)
        except (OSError, ValueError) as exc:
            raise CommandError(f"Could not read a council card from {options['file']}") from exc
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Added {peer.name} ({peer.federation_id}) at {peer.base_url}")
        )
        for entry in peer.trusted_keys:
            self.stdout.write(f"  trusts key {entry['key_id']}")
