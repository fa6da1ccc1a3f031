from django.core.management.base import BaseCommand, CommandError, CommandParser

from federation.checkpoints import CheckpointRefused, audit_checkpoint_take
from tenants.management.commands._council_arg import council_from_code
from tenants.selectors import councils_list


class Command(BaseCommand):
    help = (
        "Sign a checkpoint of every council's audit log (or one council's) now, if it grew "
        "since the latest; beat does this every AUDIT_CHECKPOINT_MINUTES (decision 0012)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", nargs="?", help="one council's ONS code; all if omitted")

    def handle(self, *args: object, **options: object) -> None:
        code = options["code"]
        councils = [council_from_code(str(code))] if code else list(councils_list())
        refused = []
        for council in councils:
            label = f"{council.code} {council.name}"
            try:
                taken = audit_checkpoint_take(council=council)
            except CheckpointRefused as refusal:
                refused.append(council.code)
                self.stdout.write(self.style.ERROR(f"{label}: REFUSED, {refusal}"))
                continue
            if taken is None:
                self.stdout.write(f"{label}: unchanged since the latest checkpoint")
            else:
                self.stdout.write(
                    f"{label}: checkpoint {taken.sequence} signed "
                    f"({taken.document['events']} events)"
                )
        if refused:
            raise CommandError(
                f"No checkpoint for {', '.join(refused)}: run `patchwork verify_audit` to see why"
            )
