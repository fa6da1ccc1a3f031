from django.core.management.base import BaseCommand, CommandError, CommandParser

from federation.selectors import peer_active
from federation.services import peer_remove


class Command(BaseCommand):
    help = "Remove a peer council: every request from it is refused from now on."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("federation_id", help="e.g. council:E06000043")

    def handle(self, *args: object, **options: str) -> None:
        peer = peer_active(options["federation_id"])
        if peer is None:
            raise CommandError(f"{options['federation_id']} is not a current peer")
        peer_remove(peer=peer)
        self.stdout.write(self.style.SUCCESS(f"Removed {peer.name}"))
