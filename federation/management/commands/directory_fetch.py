from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from federation.client import directory_fetch
from federation.directory.models import DirectoryDocument
from federation.directory.selectors import directory_state


class Command(BaseCommand):
    help = (
        "Fetch the directory of councils from FEDERATION_DIRECTORY_URLS now, verify and apply it."
    )

    def handle(self, *args: object, **options: object) -> None:
        if not settings.FEDERATION_DIRECTORY_URLS:
            raise CommandError("FEDERATION_DIRECTORY_URLS is not set")
        record = directory_fetch()
        state = directory_state()
        if record is None or record.decision != DirectoryDocument.Decision.ACCEPTED:
            reason = record.reason if record else "nothing fetched"
            raise CommandError(f"Refused: {reason}. In force: {state.detail}")
        self.stdout.write(
            self.style.SUCCESS(f"Directory {record.sequence} in force: {state.detail}")
        )
        for line in record.changes:
            self.stdout.write(f"  {line}")
