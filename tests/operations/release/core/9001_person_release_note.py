"""Expand: a new column, nullable, so adding it rewrites nothing and old code ignores it."""

from django.db import migrations, models

from tests.operations.release.core import CORE_LAST


class Migration(migrations.Migration):
    dependencies = [("core", CORE_LAST)]

    operations = [
        migrations.AddField(
            model_name="person",
            name="release_note",
            field=models.CharField(max_length=100, null=True, blank=True),
        ),
    ]
