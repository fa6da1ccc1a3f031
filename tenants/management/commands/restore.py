from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import archives
from tenants.backups import RestoreRefused, deployment_restore, manifest_rows


class Command(BaseCommand):
    help = (
        "Restore a whole deployment from a `patchwork backup` archive. Without --confirm, only "
        "check the archive and say what it holds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("archive", type=Path)
        parser.add_argument(
            "--confirm",
            action="store_true",
            help="replace the platform tables and every council in the archive",
        )

    def handle(self, *args: object, **options: object) -> None:
        path: Path = options["archive"]  # type: ignore[assignment]
        try:
            if not options["confirm"]:
                manifest = archives.archive_verify(path)
                councils = [
                    entry["council"]["code"]
                    for entry in manifest["schemas"].values()
                    if entry.get("role") == "council"
                ]
                self.stdout.write(
                    f"{path} is sound: a {manifest['kind']} archive of "
                    f"{manifest.get('created_at', 'an unknown time')}, "
                    f"{len(manifest['schemas'])} schemas, {manifest_rows(manifest)} rows"
                )
                self.stdout.write(f"  councils: {', '.join(councils) or 'none'}")
                raise CommandError(
                    "Nothing was changed. Add --confirm to replace this deployment's data."
                )
            restored = deployment_restore(path=path)
        except (archives.ArchiveError, RestoreRefused) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {len(restored.schemas)} schemas, {restored.rows} rows "
                f"in {restored.seconds:.1f}s"
            )
        )
        if restored.left_alone:
            self.stdout.write("  not in the archive, left alone: " + ", ".join(restored.left_alone))
