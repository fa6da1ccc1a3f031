"""The peer directory and council signing keys now belong to `federation.directory`: they
leave this app's state only. Their tables stay exactly as they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_federation_peer"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="CouncilSigningKey"),
                migrations.DeleteModel(name="FederationPeer"),
            ],
            database_operations=[],
        )
    ]
