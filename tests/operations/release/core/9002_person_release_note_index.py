"""Its index, built CONCURRENTLY: reads and writes go on while it builds, which PostgreSQL
allows only outside a transaction (`atomic = False`)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("core", "9001_person_release_note")]

    operations = [
        AddIndexConcurrently(
            "person", models.Index(fields=["release_note"], name="core_person_release_idx")
        ),
    ]
