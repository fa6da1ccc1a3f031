from django.core.management.base import BaseCommand

from tenants.selectors import councils_list, migration_state


class Command(BaseCommand):
    help = "List the councils on this deployment, with status and migration state."

    def handle(self, *args: object, **options: object) -> None:
        rows = [("CODE", "NAME", "STATUS", "ADDRESS", "MIGRATIONS")]
        for council in councils_list():
            domain = council.get_primary_domain()
            rows.append(
                (
                    council.code,
                    council.name,
                    council.status,
                    domain.domain if domain else "-",
                    migration_state(council.schema_name).label,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        self.stdout.write(f"{len(rows) - 1} councils")
