"""The deployment-wide federation records, in the public schema: each council's signing
keys and the directory of peers. Their tables keep the names they had when they lived in
`tenants` (db_table), so moving them here changed no data."""

from __future__ import annotations

from django.db import models

from tenants.models import Council


def council_federation_id(council: Council) -> str:
    """How a council is named to every other: `council:<ONS code>`."""
    return f"council:{council.code}"


class CouncilSigningKey(models.Model):
    """One of a council's Ed25519 federation keys. The private half is sealed under the
    deployment's key-encryption key and never stored or logged in clear."""

    council = models.ForeignKey(Council, on_delete=models.CASCADE, related_name="signing_keys")
    key_id = models.CharField(max_length=80, unique=True)
    public_key = models.BinaryField()
    sealed_private_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tenants_councilsigningkey"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_id


class CouncilEncryptionKey(models.Model):
    """A council's X25519 key for receiving secrets sealed to it with HPKE (RFC 9180): an
    agreement's match-key secret, sent by the partner. Published beside the signing keys in
    the council's signed key document and card; the private half is sealed under the
    deployment's key-encryption key like theirs (decision 0016)."""

    council = models.ForeignKey(Council, on_delete=models.CASCADE, related_name="encryption_keys")
    key_id = models.CharField(max_length=80, unique=True)
    public_key = models.BinaryField()
    sealed_private_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_id


class FederationPeer(models.Model):
    """A council this deployment may exchange pointers with. Councils on this deployment
    are listed automatically; councils on other deployments are added by an operator from
    the signed council card their deployment exports. A removed peer is refused at once."""

    federation_id = models.CharField(max_length=40, unique=True, help_text="council:<ONS code>")
    name = models.CharField(max_length=120)
    # Set for a council on this deployment; its base URL and keys come from the platform.
    council = models.OneToOneField(
        Council, null=True, blank=True, on_delete=models.CASCADE, related_name="peer"
    )
    base_url = models.URLField(blank=True)
    # The keys the operator accepted with the card: the trust anchor for key documents.
    trusted_keys = models.JSONField(default=list, blank=True)
    card = models.JSONField(default=dict, blank=True)
    keys_document = models.JSONField(null=True, blank=True)
    keys_fetched_at = models.DateTimeField(null=True, blank=True)
    keys_valid_until = models.DateTimeField(null=True, blank=True)
    added_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tenants_federationpeer"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.federation_id})"

    @property
    def is_local(self) -> bool:
        return self.council_id is not None

    @property
    def is_removed(self) -> bool:
        return self.removed_at is not None
