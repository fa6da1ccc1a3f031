import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from federation.checkpoints import (
    AuditCheck,
    CheckpointRefused,
    audit_check,
    audit_checkpoint_take,
    checkpoint_signed_at,
)
from federation.witnessing import audit_witnessed_check
from tenants.management.commands._council_arg import council_from_code
from tenants.models import Council
from tenants.selectors import councils_list


class Command(BaseCommand):
    help = (
        "Check every council's audit chain (or one council's) for tampering: every event, "
        "every signed checkpoint, and that the log still reaches each checkpoint. A council "
        "whose log holds then gets a new checkpoint if it grew (decision 0012)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", nargs="?", help="one council's ONS code; all if omitted")
        parser.add_argument(
            "--against",
            action="append",
            default=[],
            metavar="FILE",
            help="a checkpoint saved outside this database (the API's answer or the "
            "document alone): it must still be here, genuine, and reached by the log",
        )
        parser.add_argument(
            "--witnessed",
            action="store_true",
            help="also ask the councils that witnessed our checkpoints, over federation, "
            "for what they signed, and check the log still reaches it (decision 0015)",
        )
        parser.add_argument(
            "--no-checkpoint",
            action="store_true",
            help="only verify: sign no new checkpoint afterwards",
        )

    def handle(self, *args: object, **options: object) -> None:
        code = options["code"]
        councils = [council_from_code(str(code))] if code else list(councils_list())
        paths = options["against"]
        held = [_held_checkpoint(str(path)) for path in paths] if isinstance(paths, list) else []
        if held and not code:
            raise CommandError("Name the council whose checkpoint that is, e.g. E06000043")
        broken: list[str] = []
        unread: list[str] = []
        for council in councils:
            check = audit_check(council=council, held=held)
            label = f"{council.code} {council.name}"
            if check.chain is None:
                unread.append(council.code)
                for problem in check.problems:
                    self.stdout.write(self.style.ERROR(f"{label}: FAILED, {problem}"))
                continue
            if not check.intact:
                broken.append(council.code)
                for line in _what_is_wrong(check):
                    self.stdout.write(self.style.ERROR(f"{label}: BROKEN, {line}"))
                if options["witnessed"]:
                    self._witnessed(council, label)
                continue
            if options["witnessed"] and not self._witnessed(council, label):
                broken.append(council.code)
                continue
            self.stdout.write(f"{label}: {check.chain.events} events, intact")
            if check.latest is not None:
                latest = check.latest.document
                self.stdout.write(
                    f"  it reaches all {check.checkpoints} signed checkpoints; the latest, "
                    f"number {check.latest.sequence}, was signed at "
                    f"{checkpoint_signed_at(latest):%Y-%m-%d %H:%M:%S} UTC "
                    f"with {latest['events']} events"
                )
            if not options["no_checkpoint"] and not self._checkpoint(check):
                broken.append(council.code)
        failures = []
        if broken:
            failures.append(f"{len(broken)} audit chains are broken ({', '.join(broken)})")
        if unread:
            failures.append(f"{len(unread)} councils could not be checked ({', '.join(unread)})")
        if failures:
            raise CommandError("; ".join(failures))

    def _witnessed(self, council: Council, label: str) -> bool:
        """Ask the witnesses; print what each holds. False if the log does not reach a
        witnessed checkpoint (or a witness's copy is not genuine): then no new checkpoint
        is signed either, as that would bless the cut."""
        witnessed = audit_witnessed_check(council=council)
        answered = sum(1 for view in witnessed.views if view.answered)
        self.stdout.write(
            f"{label}: asked {witnessed.asked} councils for what they witnessed; "
            f"{answered} answered, {len(witnessed.witnesses)} hold a witnessed checkpoint"
        )
        for line in witnessed.notes:
            self.stdout.write(f"  {line}")
        for line in witnessed.warnings:
            self.stdout.write(self.style.WARNING(f"  WARNING: {line}"))
        for line in witnessed.failures:
            self.stdout.write(self.style.ERROR(f"{label}: BROKEN, {line}"))
        return witnessed.intact

    def _checkpoint(self, check: AuditCheck) -> bool:
        """Sign the head just verified, if it grew; False if the log changed meanwhile."""
        try:
            taken = audit_checkpoint_take(council=check.council)
        except CheckpointRefused as refused:
            self.stdout.write(self.style.ERROR(f"  no checkpoint signed: {refused}"))
            return False
        if taken is not None:
            self.stdout.write(
                f"  checkpoint {taken.sequence} signed ({taken.document['events']} events)"
            )
        return True


def _held_checkpoint(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
    except (OSError, ValueError) as error:
        raise CommandError(f"Cannot read a checkpoint from {path}: {error}") from error
    document = saved.get("checkpoint", saved) if isinstance(saved, dict) else None
    if not isinstance(document, dict):
        raise CommandError(f"{path} holds no checkpoint document")
    return document


def _what_is_wrong(check: AuditCheck) -> list[str]:
    lines = list(check.problems)
    chain = check.chain
    if chain is None:
        return lines
    if chain.first_broken_id is not None:
        lines.insert(0, f"at event {chain.first_broken_id} ({chain.problem})")
    elif chain.cut_short_of is not None:
        mark = chain.cut_short_of
        lines.insert(
            0,
            f"the audit log of {check.council.name} ends at event {chain.events}, but a "
            f"checkpoint signed at {mark.recorded_at:%Y-%m-%d %H:%M:%S} UTC recorded "
            f"{mark.events} events: its newest events were deleted",
        )
    return lines
