from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from federation.checkpoints import CheckpointRefused, audit_checkpoint_take
from federation.witnessing import audit_witness_send
from tenants.management.commands._council_arg import council_from_code
from tenants.selectors import councils_list


class Command(BaseCommand):
    help = (
        "Send every council's latest signed audit checkpoint (or one council's) to its "
        "witnesses now, after signing a new one if the log grew; beat does this every "
        "AUDIT_WITNESS_MINUTES (decision 0015)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", nargs="?", help="one council's ONS code; all if omitted")

    def handle(self, *args: object, **options: object) -> None:
        code = options["code"]
        councils = [council_from_code(str(code))] if code else list(councils_list())
        short: list[str] = []
        for council in councils:
            label = f"{council.code} {council.name}"
            try:
                audit_checkpoint_take(council=council)
            except CheckpointRefused as refusal:
                self.stdout.write(self.style.ERROR(f"{label}: no new checkpoint, {refusal}"))
            with schema_context(council.schema_name):
                results = audit_witness_send(council=council)
            if not results:
                self.stdout.write(self.style.ERROR(f"{label}: nothing witnessed"))
                short.append(council.code)
                continue
            for result in results:
                if result.witnessed and result.statement is not None:
                    self.stdout.write(
                        f"{label}: {result.peer.name} witnessed checkpoint "
                        f"{result.statement['sequence']} ({result.statement['events']} events)"
                    )
                else:
                    self.stdout.write(
                        self.style.ERROR(
                            f"{label}: {result.peer.name} refused or did not answer "
                            f"({result.reason}) {result.detail}".rstrip()
                        )
                    )
            if sum(1 for result in results if result.witnessed) < 2:
                short.append(council.code)
        if short:
            raise CommandError(
                f"Fewer than two witnesses countersigned for {', '.join(short)}: see above"
            )
