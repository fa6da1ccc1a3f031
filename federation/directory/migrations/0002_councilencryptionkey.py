"""Each council's X25519 key for secrets sealed to it with HPKE (decision 0016), and one for
every council that exists already, so partners can seal to it from the first offer."""

import secrets

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

from federation import sealing


def keys_for_existing_councils(apps, schema_editor):  # type: ignore[no-untyped-def]
    council_model = apps.get_model("tenants", "Council")
    key_model = apps.get_model("federation_directory", "CouncilEncryptionKey")
    alias = schema_editor.connection.alias
    for council in council_model.objects.using(alias).exclude(schema_name="public"):
        if key_model.objects.using(alias).filter(council=council).exists():
            continue
        key_id = f"{council.code}-x25519-{timezone.now():%Y%m%d}-{secrets.token_hex(4)}"
        public, private = sealing.new_encryption_key_pair()
        key_model.objects.using(alias).create(
            council=council,
            key_id=key_id,
            public_key=public,
            sealed_private_key=sealing.seal(
                private, context=sealing.encryption_key_context(key_id)
            ),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("federation_directory", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="CouncilEncryptionKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key_id", models.CharField(max_length=80, unique=True)),
                ("public_key", models.BinaryField()),
                ("sealed_private_key", models.BinaryField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("retired_at", models.DateTimeField(blank=True, null=True)),
                (
                    "council",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="encryption_keys",
                        to="tenants.council",
                    ),
                ),
            ],
            options={"ordering": ["-created_at"]},
        ),
        migrations.RunPython(keys_for_existing_councils, migrations.RunPython.noop),
    ]
